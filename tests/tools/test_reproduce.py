"""Every command of REPRODUCE.md, then of docs/cluster.md and transfer/README.md, runs in its
smoke form (the rules are stated at the top of REPRODUCE.md), in document order, in one temporary
world: tiny datasets (a 64x128 synthetic Cityscapes; VOC+SBD, Pascal Context, NYUv2 and Mapillary
releases in their official formats), stand-in ImageNet weights, ``output/``, and a stand-in SLURM
(``sbatch`` / ``srun`` / ``sacct`` on the PATH that run each job as a local process). Later
commands read what earlier ones wrote (Table 4's checkpoints feed Table 5 and the figures, Table
6's chain feeds its export), as on a cluster.

A ``tools/submit.py`` command that only renames an earlier submission (config file, job name,
output folder) of a config an earlier command trained (Table 4's four runs as cluster jobs) is
checked at full scale and skipped, saying so: its smoke run would run no new code.

Marked ``reproduce``: route B (``make test-upstream``) deselects these runs (about 4 minutes on
2 CPU cores); every other test runs on both routes."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

pytest.importorskip("detectron2")
pytestmark = pytest.mark.reproduce

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPRODUCE = os.path.join(REPO, "REPRODUCE.md")
#: the files whose ``bash`` blocks run, in this order (cluster.md and transfer/README.md read what
#: REPRODUCE.md's commands wrote)
DOCS = ("REPRODUCE.md", "docs/cluster.md", "transfer/README.md")
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


def reproduce_commands(doc: str = "REPRODUCE.md"):
    """The commands of ``doc``'s ``bash`` blocks, in order (continuation lines joined)."""
    with open(os.path.join(REPO, doc)) as f:
        text = f.read()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                cmds.append(line.strip())
    return cmds


def doc_commands():
    """``(doc, index, command)`` for every command of :data:`DOCS`, in order."""
    return [(doc, i, cmd) for doc in DOCS for i, cmd in enumerate(reproduce_commands(doc))]


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
        "64", "INPUT.MAX_SIZE_TEST", "128",
        # MMSegmentation's pipeline (the Table 1 configs) scales to 2048x1024 for training and
        # test: the synthetic 64x128 frames stay at that size instead
        "INPUT.RESIZE.TRAIN_SCALE", "(128, 64)", "INPUT.RESIZE.TEST_SCALE", "(128, 64)",
        "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0",
    ]  # fmt: skip


def smoke_grid(grid_file: str, world: str, one_cell: bool = False) -> str:
    """The grid reduced to its first model (Figure 5's first model where it has a sweep), its
    first dataset on one GPU (one process) with the synthetic Cityscapes standing in for its data,
    seed 0, Figure 5's 0-1 heads, tiny cells. The cell's config file stays the grid's.
    ``one_cell``: only the CPP cell (Table 1's, or Figure 5's at 1 head): a grid sent to the
    stand-in SLURM, one job."""
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
    if one_cell:  # both variants name the CPP cell: one cell, and Table 1 still renders
        grid["variants"] = {"baseline": grid["variants"]["cpp"], "cpp": grid["variants"]["cpp"]}
        if fig:
            fig.update(num_heads=[1], losses={"cpp": "cpp_kl"})
    grid["opts"] = list(grid.get("opts") or []) + cpp_tiny_opts()
    name = ("one_cell_" if one_cell else "") + os.path.basename(grid_file)
    path = os.path.join(world, "grids", name)
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


#: paths the smoke world lacks -> what stands in for them (REPRODUCE.md, top): the second model of
#: Figure 7 (the user's) is Table 4's CPP-off model
STAND_INS = {
    "weights/other_model.yaml": "output/ablation/seethroughnet_W48_cpp-off_msa-on/config.yaml",
    "weights/other_model.pth": "output/ablation/seethroughnet_W48_cpp-off_msa-on/model_final.pth",
}
GRID_PROGRAMS = ("tools/run_cpp_study.py", "transfer.run_table5")
#: a grid's output options: where a grid sent to the stand-in SLURM writes instead
GRID_OUTPUTS = ("--out", "--out-dir", "--md", "--fig")


def _expand(token: str, env: dict) -> str:
    """``$VAR`` / ``${VAR}`` from ``env`` (as the shell expands them in double quotes)."""
    return re.sub(
        r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), token
    )


def _cell_stand_in(path: str) -> str:
    """A Table 1 cell path (``.../<model>__<dataset>__<aux>__s<seed>/...``) that the reduced
    grid did not train -> the trained cell of the same dataset, loss and seed."""
    m = re.match(r"(.*/)(\w+?)__(\w+__\w+__s\d+)(/.*)$", path)
    if os.path.exists(path) or not m:
        return path
    found = sorted(glob.glob(f"{m.group(1)}*__{m.group(3)}{m.group(4)}"))
    assert found, f"no smoke cell stands in for {path}"
    return found[0]


def smoke_form(cmd: str, world: str):
    """``(argv, env)``: a documented ``cmd`` in its smoke form (REPRODUCE.md, top)."""
    env = dict(os.environ, DETECTRON2_DATASETS=os.path.join(world, "datasets"))
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "projects/SeeThroughNet"), REPO])
    env["PATH"] = os.pathsep.join([os.path.join(world, "bin"), env.get("PATH", "")])
    env["FAKE_SLURM_DIR"] = os.path.join(world, "slurm")
    tokens = [_expand(t, env) for t in shlex.split(cmd)]
    while "=" in tokens[0] and not tokens[0].startswith("-"):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = os.path.join(world, value) if value.startswith("datasets/") else value
    assert tokens[0] == "python", f"documented command without a smoke form: {cmd}"
    argv = [sys.executable, "-W", "ignore"]
    rest = tokens[1:]
    program = rest[1] if rest[0] == "-m" else rest[0]
    slurm_grid = program in GRID_PROGRAMS and "slurm" in rest
    out = []
    i = 0
    while i < len(rest):
        t = rest[i]
        if t in ("--num-gpus", "--seeds", "--nodes", "--gpus-per-node", "--max-concurrent"):
            out += [t, "1"]
            i += 2
            continue
        if t == "SOLVER.REFERENCE_WORLD_SIZE":  # the smoke's one process
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
        if slurm_grid and t in GRID_OUTPUTS:  # fresh folders: the cells run as jobs
            out += [
                t,
                os.path.join(world, "output", "slurm", os.path.relpath(rest[i + 1], "output")),
            ]
            i += 2
            continue
        t = STAND_INS.get(t, t)
        if t.startswith(("datasets/", "output/", "weights/")) and not t.endswith(".py"):
            t = os.path.join(world, t)
        if t.startswith(world + os.sep):
            t = _cell_stand_in(_synthetic_stand_in(t, world))
        out.append(t)
        i += 1
    if program == "tools/run_cpp_study.py":
        out[2] = smoke_grid(out[2], world, one_cell=slurm_grid)
    elif program in STN_PROGRAMS or program == "tools/submit.py":
        configs = [out[k + 1] for k, t in enumerate(out) if t.endswith("config-file")]
        # a trained run's own config.yaml is already the tiny model
        if not all(c.startswith(os.path.join(world, "output")) for c in configs):
            out += stn_tiny_opts()
    elif program == "transfer.train_net":
        from transfer.table5 import SMOKE_OPTS

        out += list(SMOKE_OPTS) + ["MODEL.HRNET.VARIANT", "hrnet_w18_small_v2"]
        out += ["SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "(1,)"]
    elif program == "transfer.run_table5":
        out += ["--smoke", "--iters", "4", "--variant", "hrnet_w18_small_v2"]
        out += ["--detectors", "faster_rcnn", "--modes", "frozen"]
        if slurm_grid:
            out += ["--inits", "stn_cpp"]
    elif program == "transfer.smoke":
        out += ["--height", "64", "--width", "128", "--num-train", "2", "--num-val", "2"]
        out += ["--stn-iters", "1", "--iters", "2", "--recompute-bn-imagenet", "0"]
        out += ["--detectors", "faster_rcnn", "--inits", "stn_cpp", "--modes", "frozen"]
    elif program == "tools/estimate_gpu_hours.py":
        out += ["--table", "Table 4", "--steps", "1", "--warmup", "0", "--measure-size", "64", "64"]
        out += ["--opts", *stn_tiny_opts()]
    return argv + out, env


def _overrides(tokens) -> list:
    """The ``KEY VALUE`` config overrides among a command's arguments."""
    keys = [
        k for k, t in enumerate(tokens[:-1]) if re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+", t)
    ]
    return [x for k in keys for x in (tokens[k], tokens[k + 1])]


def check_initialisation(cmd: str) -> int:
    """The documented ``cmd`` at full scale: every run it trains (every cell of the *full* grid)
    would pass :func:`seethroughnet.engine.check_pretrained_weights` with the command's own
    overrides, i.e. none would stop for want of ImageNet weights (the narrowed smoke models skip
    that guard). Returns the number of configs checked."""
    from seethroughnet.config import build_config
    from seethroughnet.engine import check_pretrained_weights
    from seethroughnet.experiments import cpp_study

    tokens = shlex.split(cmd)
    runs = []  # (config, opts)
    if (
        "tools/run_cpp_study.py" in tokens
        and tokens[tokens.index("tools/run_cpp_study.py") + 1] == "run"
    ):
        grid_file = tokens[tokens.index("tools/run_cpp_study.py") + 2]
        grid = cpp_study.load_grid(os.path.join(REPO, grid_file))
        grid["opts"] = list(grid.get("opts") or []) + _overrides(tokens)
        seen = set()
        for c in cpp_study.expand_grid(grid):
            if c["config"] not in seen:  # the aux-head settings do not touch initialisation
                seen.add(c["config"])
                runs.append((os.path.join(REPO, c["config"]), c["opts"]))
    elif ("projects/SeeThroughNet/train_net.py" in tokens and "--eval-only" not in tokens) or (
        "tools/submit.py" in tokens and "--script" not in tokens
    ):
        config = tokens[tokens.index("--config-file") + 1]
        runs.append((os.path.join(REPO, config), _overrides(tokens)))
    for config, opts in runs:
        cfg = build_config(config, opts)
        try:
            check_pretrained_weights(cfg)
        except Exception as e:  # noqa: BLE001 -- the guard's RandomInitError, with the command
            raise AssertionError(f"{cmd}\nwould stop at full scale ({config}): {e}") from None
    return len(runs)


FAKE_SBATCH = r"""
import os, re, subprocess, sys, time

LOG = os.environ["FAKE_SLURM_DIR"]


def run_job(jid, script):
    # submitit moves the job's pickle to <folder>/<jid>_submitted.pkl once sbatch has answered
    folder = re.search(r"submitit\.core\._submit '?([^' \n]+)", open(script).read()).group(1)
    pickle = os.path.join(folder, f"{jid}_submitted.pkl")
    deadline = time.time() + 120
    while not os.path.exists(pickle) and time.time() < deadline:
        time.sleep(0.1)
    env = dict(os.environ, SLURM_JOB_ID=jid, SLURM_JOB_NUM_NODES="1", SLURM_NNODES="1",
               SLURM_NTASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0",
               SLURM_JOB_NODELIST="localhost")
    with open(os.path.join(LOG, f"{jid}.log"), "w") as log:
        rc = subprocess.call(["bash", script], env=env, stdout=log, stderr=subprocess.STDOUT)
    with open(os.path.join(LOG, f"{jid}.rc.tmp"), "w") as f:
        f.write(str(rc))
    os.replace(os.path.join(LOG, f"{jid}.rc.tmp"), os.path.join(LOG, f"{jid}.rc"))


if sys.argv[1:2] == ["--run"]:
    run_job(sys.argv[2], sys.argv[3])
    sys.exit(0)
script = sys.argv[-1]
jid = str(1000 + len([f for f in os.listdir(LOG) if f.endswith(".sbatch")]))
with open(script) as f, open(os.path.join(LOG, f"{jid}.sbatch"), "w") as g:
    g.write(f.read())
with open(os.path.join(LOG, f"{jid}.args"), "w") as f:
    f.write("\n".join(sys.argv[1:]))
subprocess.Popen([sys.executable, __file__, "--run", jid, os.path.join(LOG, f"{jid}.sbatch")],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
print(f"Submitted batch job {jid}")
"""

FAKE_SRUN = r"""
import os, subprocess, sys

args, files = sys.argv[1:], {}
while args and args[0].startswith("--"):
    opt = args.pop(0)
    if opt in ("--output", "--error"):
        path = args.pop(0).replace("%j", os.environ["SLURM_JOB_ID"]).replace("%t", "0")
        files[opt] = path
out = open(files.get("--output", os.devnull), "a")
err = open(files["--error"], "a") if "--error" in files else subprocess.STDOUT
sys.exit(subprocess.call(args, stdout=out, stderr=err))
"""

FAKE_SACCT = r"""
import os, sys

LOG = os.environ["FAKE_SLURM_DIR"]
print("JobID|State|NodeList")
for k, a in enumerate(sys.argv):
    if sys.argv[k - 1] == "-j":
        rc = os.path.join(LOG, f"{a}.rc")
        state = "RUNNING" if not os.path.exists(rc) else (
            "COMPLETED" if open(rc).read().strip() == "0" else "FAILED")
        print(f"{a}|{state}|localhost")
"""


def write_fake_slurm(bin_dir: str) -> None:
    """``sbatch`` (records the script, runs it in the background once submitit has written the
    job's pickle, with one node's SLURM environment; exit status in ``$FAKE_SLURM_DIR/<id>.rc``),
    ``srun`` (runs its command with the ``--output`` / ``--error`` files) and ``sacct``."""
    os.makedirs(bin_dir)
    for name, body in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("sacct", FAKE_SACCT)):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(f"#!{sys.executable}\n{body}")
        os.chmod(path, 0o755)


def wait_for_jobs(world: str, before: set, timeout: float = 600) -> list:
    """The stand-in SLURM jobs submitted since ``before``, once all have ended:
    ``[(job_id, exit status, log tail)]``."""
    log = os.path.join(world, "slurm")
    jobs = sorted({f[: -len(".sbatch")] for f in os.listdir(log) if f.endswith(".sbatch")} - before)
    deadline = time.time() + timeout
    while any(not os.path.exists(os.path.join(log, f"{j}.rc")) for j in jobs):
        assert time.time() < deadline, f"stand-in SLURM jobs {jobs} did not end"
        time.sleep(0.5)
    out = []
    for j in jobs:
        with open(os.path.join(log, f"{j}.rc")) as f:
            rc = int(f.read())
        tail = ""
        for path in [os.path.join(log, f"{j}.log")] + glob.glob(
            os.path.join(world, "output", "**", f"{j}_0_log.*"), recursive=True
        ):
            with open(path, errors="replace") as f:
                tail += f"--- {path}\n" + f.read()[-3000:]
        out.append((j, rc, tail))
    return out


def grid_cells_ok(argv) -> list:
    """The cells of a grid command's output folder that did not end ``ok``."""
    if "tools/run_cpp_study.py" in argv and "run" in argv:
        out = argv[argv.index("--out") + 1]
        with open(os.path.join(out, "results.jsonl")) as f:
            records = [json.loads(line) for line in f]
        assert records, f"no cells in {out}"
        return [r["id"] for r in records if r.get("status") != "ok"]
    if "transfer.run_table5" in argv:
        out = argv[argv.index("--out-dir") + 1]
        results = glob.glob(os.path.join(out, "*", "*", "result.json"))
        assert results, f"no cells in {out}"
        return [p for p in results if json.load(open(p)).get("status") != "ok"]
    return []


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
    write_fake_slurm(str(root / "bin"))
    os.makedirs(root / "slurm")
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


COMMANDS = doc_commands()
SHORT = {
    "REPRODUCE.md": "reproduce",
    "docs/cluster.md": "cluster",
    "transfer/README.md": "transfer",
}
IDS = [f"{SHORT[doc]}-{i:02d}" for doc, i, _ in COMMANDS]


#: what the commands run so far trained (config file -> command) and the shapes of the submissions
#: they made (shape -> command)
TRAINED_CONFIGS: dict = {}
SUBMISSION_SHAPES: dict = {}
#: the values that tell one training run from another of the same table
RUN_NAMING = ("--config-file", "--job-name", "OUTPUT_DIR")


def submission_shape(argv) -> tuple:
    """A ``tools/submit.py`` command with its config file, job name and output folder blanked."""
    return tuple("*" if k and argv[k - 1] in RUN_NAMING else t for k, t in enumerate(argv))


def repeats_a_run(argv) -> str:
    """For a ``tools/submit.py`` submission whose config an earlier command has trained and that
    differs from an earlier submission only in its config, job name and output folder (Table 4's
    four runs as cluster jobs after REPRODUCE.md trained them; it would run no new code): which
    commands it repeats. Otherwise ``""``."""
    if "tools/submit.py" not in argv or "--config-file" not in argv:
        return ""
    config = argv[argv.index("--config-file") + 1]
    shape = submission_shape(argv)
    if config in TRAINED_CONFIGS and shape in SUBMISSION_SHAPES:
        return (
            f"{SUBMISSION_SHAPES[shape]}'s submission, of the config that "
            f"{TRAINED_CONFIGS[config]} trained"
        )
    return ""


def record_run(argv, test_id: str) -> None:
    if "--config-file" in argv and "--eval-only" not in argv:
        TRAINED_CONFIGS.setdefault(argv[argv.index("--config-file") + 1], test_id)
    if "tools/submit.py" in argv:
        SUBMISSION_SHAPES.setdefault(submission_shape(argv), test_id)


@pytest.mark.parametrize("doc,index,cmd", COMMANDS, ids=IDS)
def test_reproduce_command_runs_in_smoke_form(doc, index, cmd, world):
    check_initialisation(cmd)
    argv, env = smoke_form(cmd, world)
    repeated = repeats_a_run(argv)
    if repeated:
        pytest.skip(f"initialisation checked at full scale; the smoke run would repeat {repeated}")
    record_run(argv, f"{SHORT[doc]}-{index:02d}")
    jobs_before = {
        f[: -len(".sbatch")]
        for f in os.listdir(os.path.join(world, "slurm"))
        if f.endswith(".sbatch")
    }
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (
        f"{doc}: {cmd}\nsmoke form: {shlex.join(argv)}\n{r.stdout[-3000:]}\n" + (r.stderr[-5000:])
    )
    jobs = wait_for_jobs(world, jobs_before)
    failed = [(j, rc, tail) for j, rc, tail in jobs if rc != 0]
    assert not failed, f"{doc}: {cmd}\nstand-in SLURM jobs failed: {failed}"
    if "slurm" in argv or "tools/submit.py" in argv:
        assert jobs, f"{doc}: {cmd} submitted no job"
    assert not grid_cells_ok(argv), f"{doc}: {cmd}: cells not ok: {grid_cells_ok(argv)}"
    for t in argv:  # every output the command names exists afterwards
        if t.startswith(os.path.join(world, "output")) and t.endswith((".png", ".md")):
            assert os.path.exists(t), f"{cmd}: {t} was not written"
    if ("train_net.py" in cmd or "tools/submit.py" in cmd) and "--eval-only" not in cmd:
        out_dir = argv[argv.index("OUTPUT_DIR") + 1]
        assert os.path.isfile(os.path.join(out_dir, "model_final.pth")), cmd
