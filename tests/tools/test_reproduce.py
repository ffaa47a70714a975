"""Every command of REPRODUCE.md runs, in its smoke form (the rules are stated at the top of
REPRODUCE.md), in document order, in one temporary world: tiny datasets (a 64x128 synthetic
Cityscapes; VOC+SBD, Pascal Context, NYUv2 and Mapillary releases in their official formats),
stand-in ImageNet weights, and ``output/``. Later commands read what earlier ones wrote (Table 4's
checkpoints feed Table 5 and the figures, Table 6's chain feeds its export), as on a cluster.

Marked ``reproduce``: route B (``make test-upstream``) deselects these runs (about 4 minutes on
2 CPU cores); every other test runs on both routes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

pytest.importorskip("detectron2")
pytestmark = pytest.mark.reproduce

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPRODUCE = os.path.join(REPO, "REPRODUCE.md")
STN_TINY = os.path.join(REPO, "tests/configs/seethroughnet_tiny.yaml")
CPP_TINY = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")
PAPER_STN = os.path.join(
    REPO, "projects/SeeThroughNet/configs/Cityscapes/seethroughnet_W48_cityscapes_fine.yaml"
)
#: keys a smoke run keeps from the command's own config (what the command is about)
KEEP = ("DATASETS.", "OUTPUT_DIR", "MODEL.WEIGHTS", "MODEL.HRNET.CHECKPOINT", "SEED", "VERSION")
STN_PROGRAMS = (
    "projects/SeeThroughNet/train_net.py",
    "tools/export_cityscapes_submission.py",
    "tools/gradcam.py",
    "tools/compare_models.py",
)


def reproduce_commands():
    """The commands of REPRODUCE.md's ``bash`` blocks, in order (continuation lines joined)."""
    with open(REPRODUCE) as f:
        text = f.read()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                cmds.append(line.strip())
    return cmds


def _flat(c, prefix=""):
    from detectron2.config import CfgNode

    out = {}
    for k, v in c.items():
        out.update(_flat(v, prefix + k + ".") if isinstance(v, CfgNode) else {prefix + k: v})
    return out


def stn_tiny_opts():
    """KEY VALUE pairs turning the paper's SeeThroughNet config into the tests' tiny model and run
    (tests/configs/seethroughnet_tiny.yaml) everywhere but the keys in :data:`KEEP`."""
    from seethroughnet.config import build_config

    paper, tiny = _flat(build_config(PAPER_STN, [])), _flat(build_config(STN_TINY, []))
    opts = []
    for k, v in tiny.items():
        # INPUT.* always: a config of the chain may change sizes the paper config shares with
        # the tiny one (Mapillary's 2177 test size)
        if k in paper and (paper[k] != v or k.startswith("INPUT.")) and not k.startswith(KEEP):
            opts += [k, str(v)]
    return opts + ["SOLVER.MAX_ITER", "1", "SOLVER.CHECKPOINT_PERIOD", "1"]


def cpp_tiny_opts():
    """The plug-in models' tiny widths (tests/configs/cpp_plugin_tiny_overrides.yaml) and run."""
    import yaml

    def flat(d, prefix=""):
        out = []
        for k, v in d.items():
            out += flat(v, prefix + k + ".") if isinstance(v, dict) else [prefix + k, str(v)]
        return out

    with open(CPP_TINY) as f:
        opts = flat(yaml.safe_load(f))
    return opts + [
        "MODEL.REQUIRES_PRETRAINED", "False", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
        "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.CROP.SIZE", "(64, 64)", "INPUT.MIN_SIZE_TEST",
        "64", "INPUT.MAX_SIZE_TEST", "128", "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0",
    ]  # fmt: skip


def smoke_grid(grid_file: str, world: str) -> str:
    """The grid reduced to its first model (Figure 5's first model where it has a sweep), its
    first dataset on one GPU (one process) with the synthetic Cityscapes standing in for its data,
    seed 0, Figure 5's 0-1 heads, tiny cells. The cell's config file stays the grid's."""
    import yaml

    with open(os.path.join(REPO, grid_file)) as f:
        grid = yaml.safe_load(f)
    fig = grid.get("figure5")
    fig_models = (fig.get("models") or [fig["model"]]) if fig else []
    model = fig_models[0] if fig else next(iter(grid["models"]))
    dataset = fig["dataset"] if fig else next(iter(grid["datasets"]))
    grid["models"] = {model: grid["models"][model]}
    config = {k: v for k, v in grid["datasets"][dataset].items() if k == "config"}
    grid["datasets"] = {
        dataset: {
            **config,
            "gpus": 1,
            "train": "cityscapes_fine_sem_seg_train",
            "test": "cityscapes_fine_sem_seg_val",
            "num_classes": 19,
            "instance_classes": ["car", "person"],
        }
    }
    grid["seeds"], grid["threads"], grid["parallel"] = [0], 1, 1
    if fig:
        fig.pop("model", None)
        fig.update(models=[model], num_heads=[0, 1], seeds=[0])
        grid["variants"] = {  # Table 1's two variants at 1 head: the sweep's own 1-head cells
            "baseline": {"loss": "upsample_ce", "num_heads": 1},
            "cpp": {"loss": "cpp_kl", "num_heads": 1},
        }
    grid["opts"] = list(grid.get("opts") or []) + cpp_tiny_opts()
    path = os.path.join(world, "grids", os.path.basename(grid_file))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(grid, f)
    return path


def _synthetic_stand_in(path: str, world: str) -> str:
    """A Cityscapes image/label path that the synthetic set lacks -> the synthetic file of the
    same split and kind."""
    m = re.match(
        r".*/cityscapes/(leftImg8bit|gtFine)/(\w+)/\w+/\w+_(leftImg8bit|gtFine_\w+)\.png$", path
    )
    if os.path.exists(path) or not m:
        return path
    kind, split, suffix = m.groups()
    folder = os.path.join(world, "datasets", "cityscapes", kind, split)
    for dirpath, _, files in sorted(os.walk(folder)):
        for fn in sorted(files):
            if fn.endswith(f"_{suffix}.png"):
                return os.path.join(dirpath, fn)
    raise AssertionError(f"no synthetic stand-in for {path}")


def smoke_form(cmd: str, world: str):
    """``(argv, env)``: REPRODUCE.md's ``cmd`` in its smoke form (REPRODUCE.md, top)."""
    tokens = shlex.split(cmd)
    env = dict(os.environ, DETECTRON2_DATASETS=os.path.join(world, "datasets"))
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "projects/SeeThroughNet"), REPO])
    while "=" in tokens[0] and not tokens[0].startswith("-"):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = os.path.join(world, value) if value.startswith("datasets/") else value
    assert tokens[0] == "python", f"REPRODUCE.md command without a smoke form: {cmd}"
    argv = [sys.executable, "-W", "ignore"]
    rest = tokens[1:]
    out = []
    i = 0
    while i < len(rest):
        t = rest[i]
        if t in ("--num-gpus", "--seeds"):
            out += [t, "1"]
            i += 2
            continue
        if t == "--workers":
            out += [t, "0"]
            i += 2
            continue
        if t == "MODEL.RESNETS.IMAGENET_CHECKPOINT":  # the plug-in models start from random init
            i += 2
            continue
        if t.startswith(("datasets/", "output/", "weights/")) and not t.endswith(".py"):
            t = _synthetic_stand_in(os.path.join(world, t), world)
        out.append(t)
        i += 1
    program = out[1] if out[0] == "-m" else out[0]
    if program == "tools/run_cpp_study.py":
        out[2] = smoke_grid(out[2], world)
    elif program in STN_PROGRAMS:
        out += stn_tiny_opts()
    elif program == "transfer.run_table5":
        out += ["--smoke", "--iters", "4", "--variant", "hrnet_w18_small_v2"]
        out += ["--detectors", "faster_rcnn", "--modes", "frozen"]
    elif program == "tools/estimate_gpu_hours.py":
        out += ["--table", "Table 4", "--steps", "1", "--warmup", "0", "--measure-size", "64", "64"]
        out += ["--opts", *stn_tiny_opts()]
    return argv + out, env


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The smoke runs' shared folder: ``datasets/`` (synthetic Cityscapes with a test split, the
    official-release fakes), ``weights/hrnetv2_w48_imagenet.pth`` (a random timm
    ``hrnet_w18_small_v2`` in timm's layout), ``output/`` filled by the commands."""
    from seethroughnet.data.synthetic import generate_synthetic_cityscapes
    from transfer.smoke import make_standin_imagenet_checkpoint

    from official_releases import (
        write_context_release,
        write_fake_mapillary,
        write_nyu_release,
        write_voc_release,
    )

    root = tmp_path_factory.mktemp("reproduce")
    data = root / "datasets"
    generate_synthetic_cityscapes(
        str(data / "cityscapes"),
        seed=5,
        height=64,
        width=128,
        num_images={"train": 4, "val": 2, "test": 2},
        progress=False,
    )
    write_voc_release(data)
    write_context_release(data)
    pytest.importorskip("h5py")
    write_nyu_release(data)
    write_fake_mapillary(data / "mapillary_vistas")
    os.makedirs(root / "weights")
    make_standin_imagenet_checkpoint(str(root / "weights" / "hrnetv2_w48_imagenet.pth"))
    return str(root)


def test_reproduce_md_lists_commands_for_every_table_and_figure():
    text = open(REPRODUCE).read()
    for item in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 6"):
        assert item in text, item
    for fig in ("Figure 2", "Figure 3", "Figure 5", "Figures 1, 6 and 7"):
        assert fig in text, fig
    cmds = reproduce_commands()
    assert len(cmds) >= 20
    assert "GPU_HOURS_TABLE" not in text, "the GPU-hours table was not filled in"


COMMANDS = reproduce_commands()


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{i:02d}" for i in range(len(COMMANDS))])
def test_reproduce_command_runs_in_smoke_form(cmd, world):
    argv, env = smoke_form(cmd, world)
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (
        f"{cmd}\nsmoke form: {shlex.join(argv)}\n{r.stdout[-3000:]}\n" + (r.stderr[-5000:])
    )
    for t in argv:  # every output the command names exists afterwards
        if t.startswith(os.path.join(world, "output")) and t.endswith((".png", ".md")):
            assert os.path.exists(t), f"{cmd}: {t} was not written"
    if "train_net.py" in cmd and "--eval-only" not in cmd:
        out_dir = argv[argv.index("OUTPUT_DIR") + 1]
        assert os.path.isfile(os.path.join(out_dir, "model_final.pth")), cmd
