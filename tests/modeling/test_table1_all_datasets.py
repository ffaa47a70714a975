"""Table 1 on all four datasets (issue 13 item 2): the grids ``table1_full.yaml`` (4 datasets x 7
models x {baseline, CPP} x 3 seeds) and ``figure5_voc.yaml`` (PSPNet on VOC, 0-4 heads x {up-sampled
CE, CPP}), and the per-dataset configs ``VOC/``, ``Context/``, ``NYUv2/``:

* the grids expand to the expected cells, and render on an empty output folder;
* every (model, dataset) cell of the grids resolves to exactly the per-dataset config file (the grid
  format gives a model one config, so the datasets' values travel as ``opts``: they must not drift
  from the files, whose comments hold the sources);
* every config builds its model on CPU (tiny widths: ResNet-18 / HRNet-W18-small, 16-channel heads)
  with the dataset's number of classes;
* one tiny training step (forward + backward, finite loss) per dataset, random images and labels
  of that dataset's class count.
"""

import copy
import os

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

import seethroughnet.modeling.segmentors  # noqa: E402,F401  (registers CPPSegmentor)
from seethroughnet.config import build_config  # noqa: E402
from seethroughnet.experiments import cpp_study, cpp_study_report  # noqa: E402
from seethroughnet.nn.decode_heads import DECODE_HEADS  # noqa: E402
from seethroughnet.utils.safe_load import merge_config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
GRID_DIR = os.path.join(CFG_DIR, "grids")
TABLE1_GRID = os.path.join(GRID_DIR, "table1_full.yaml")
FIGURE5_GRID = os.path.join(GRID_DIR, "figure5_voc.yaml")

MODELS = {  # grid model name -> (config file stem, decode head)
    "pspnet": ("pspnet_R101", "psp"),
    "deeplabv3plus": ("deeplabv3plus_R101", "deeplabv3plus"),
    "upernet": ("upernet_R101", "upernet"),
    "dmnet": ("dmnet_R101", "dmnet"),
    "ccnet": ("ccnet_R101", "ccnet"),
    "ann": ("ann_R101", "ann"),
    "ocrnet": ("ocrnet_HRW48", "ocr"),
}
DATASETS = {  # grid dataset name -> (config folder, file suffix, number of classes, train set)
    "cityscapes": ("", "cityscapes", 19, "cityscapes_fine_sem_seg_train"),
    "voc": ("VOC", "voc", 21, "voc2012_sem_seg_train_aug"),
    "context59": ("Context", "context59", 59, "pascal_context59_sem_seg_train"),
    "nyuv2": ("NYUv2", "nyuv2", 40, "nyuv2_40_sem_seg_train"),
}


def config_path(model, dataset):
    folder, suffix = DATASETS[dataset][:2]
    return os.path.join(CFG_DIR, folder, f"{MODELS[model][0]}_{suffix}.yaml")


ALL_CONFIGS = [(m, d) for d in DATASETS for m in MODELS]

# tiny widths for CPU builds (norms BN: single process; the configs keep SyncBN)
TINY_OVERRIDES = os.path.join(REPO, "tests/configs/cpp_plugin_tiny_overrides.yaml")


def tiny_config(path):
    cfg = build_config(path)
    merge_config_file(cfg, TINY_OVERRIDES)
    return cfg


@pytest.fixture(scope="module")
def table1_grid():
    return cpp_study.load_grid(TABLE1_GRID)


@pytest.fixture(scope="module")
def figure5_grid():
    return cpp_study.load_grid(FIGURE5_GRID)


# ------------------------------------------------------------------------------------------ grids
def test_table1_grid_has_4x7x2x3_cells(table1_grid):
    cells = cpp_study.expand_grid(table1_grid)
    assert len(cells) == 4 * 7 * 2 * 3
    assert list(table1_grid["models"]) == list(MODELS)
    assert list(table1_grid["datasets"]) == list(DATASETS)
    assert {(c["model"], c["dataset"]) for c in cells} == set(ALL_CONFIGS)
    pairs = {(c["loss"], c["num_heads"]) for c in cells}
    assert pairs == {("upsample_ce", 4), ("cpp_kl", 4)}
    assert sorted({c["seed"] for c in cells}) == [0, 1, 2]
    for name, (_, _, k, train) in DATASETS.items():
        d = table1_grid["datasets"][name]
        assert d["num_classes"] == k and d["train"] == train
    # Table 2: instance classes given for every dataset, Cityscapes = its 8 "thing" classes
    things = {"person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"}
    assert set(table1_grid["datasets"]["cityscapes"]["instance_classes"]) == things
    assert all(d.get("instance_classes") for d in table1_grid["datasets"].values())


def test_instance_classes_are_class_names_of_their_dataset(table1_grid):
    """Table 2 matches the instance classes against the per-class IoU names (the registered
    classes): a misspelt name would silently count as non-instance."""
    from seethroughnet.data.datasets.nyuv2 import NYUV2_40_CLASSES
    from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES
    from seethroughnet.data.datasets.pascal_voc import VOC_CLASSES

    classes = {"voc": VOC_CLASSES, "context59": CONTEXT59_CLASSES, "nyuv2": NYUV2_40_CLASSES}
    for name, names in classes.items():
        inst = table1_grid["datasets"][name]["instance_classes"]
        assert len(names) == DATASETS[name][2]
        assert set(inst) <= set(names), set(inst) - set(names)
    assert len(table1_grid["datasets"]["nyuv2"]["instance_classes"]) == 18  # ScanNet's 18


def test_figure5_grid_has_5_heads_x_2_losses(figure5_grid, table1_grid):
    data = cpp_study_report.figure5_data(figure5_grid, [])
    assert {k: [p[0] for p in v] for k, v in data.items()} == {
        "upsample": [0, 1, 2, 3, 4],
        "cpp": [0, 1, 2, 3, 4],
    }
    cells = cpp_study.expand_grid(figure5_grid)
    # 0 heads is one no-aux cell shared by both curves: (1 + 4 x 2) x 3 seeds
    assert len(cells) == (1 + 4 * 2) * 3
    assert {(c["model"], c["dataset"]) for c in cells} == {("pspnet", "voc")}
    assert {(c["loss"], c["num_heads"]) for c in cells} == {("none", 0)} | {
        (loss, n) for loss in ("upsample_ce", "cpp_kl") for n in (1, 2, 3, 4)
    }
    # the same VOC block as table1_full (so the 4-head points are Table 1's pspnet/voc cells)
    assert figure5_grid["datasets"]["voc"] == table1_grid["datasets"]["voc"]
    t1_ids = {c["id"] for c in cpp_study.expand_grid(table1_grid)}
    four = {c["id"] for c in cells if c["num_heads"] == 4}
    assert len(four) == 6 and four <= t1_ids


@pytest.mark.parametrize("which", ["table1", "figure5"])
def test_grids_render_on_an_empty_output_folder(which, table1_grid, figure5_grid, tmp_path):
    grid = table1_grid if which == "table1" else figure5_grid
    text = cpp_study.render(grid, str(tmp_path))
    n = len(cpp_study.expand_grid(grid))
    assert f"Cells: {n} (0 ok, 0 failed, {n} pending)." in text
    rows = [ln for ln in cpp_study_report.table1(grid, []).splitlines()[2:]]
    assert len(rows) == len(grid["models"]) * len(grid["datasets"])
    if which == "figure5":
        assert "| 4 | n/a | n/a |" in text
    assert os.path.isfile(tmp_path / "results.jsonl")


# ------------------------------------------------------- grid cells = the per-dataset config files
def _flat(node, prefix=""):
    """``{"A.B.C": value}`` of a config (lists as tuples), without OUTPUT_DIR."""
    out = {}
    for k, v in node.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif key != "OUTPUT_DIR":
            out[key] = tuple(v) if isinstance(v, (list, tuple)) else v
    return out


def cell_config_mismatches(grid, model, dataset):
    """Keys where the grid's (model, dataset) cell differs from the per-dataset config file (with
    the cell's variant/seed options applied to both); empty when they agree."""
    cell = next(
        c
        for c in cpp_study.expand_grid(grid)
        if c["model"] == model and c["dataset"] == dataset and c["loss"] == "cpp_kl"
    )
    tail = cell["opts"][cell["opts"].index("MODEL.CPP_AUX.ENABLED") :]
    from_grid = build_config(os.path.join(REPO, cell["config"]), cell["opts"])
    from_file = build_config(config_path(model, dataset), tail)
    a, b = _flat(from_grid), _flat(from_file)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>"))


@pytest.mark.parametrize("model,dataset", ALL_CONFIGS)
def test_grid_cell_is_the_per_dataset_config(model, dataset, table1_grid):
    assert cell_config_mismatches(table1_grid, model, dataset) == []


def test_a_drifted_grid_value_is_caught(table1_grid):
    grid = copy.deepcopy(table1_grid)
    opts = grid["datasets"]["voc"]["opts"]
    opts[opts.index("INPUT.CROP.SIZE") + 1] = "(500, 500)"
    assert cell_config_mismatches(grid, "pspnet", "voc") == ["INPUT.CROP.SIZE"]


# ----------------------------------------------------------------------------- tiny CPU builds
@pytest.mark.parametrize("model,dataset", ALL_CONFIGS)
def test_every_config_builds_on_cpu(model, dataset):
    cfg = tiny_config(config_path(model, dataset))
    k = DATASETS[dataset][2]
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == k
    assert cfg.DATASETS.TRAIN == (DATASETS[dataset][3],)
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    assert net.decode_head.__class__ is DECODE_HEADS[MODELS[model][1]]
    assert sorted(net.aux_heads.heads) == ["res2", "res3", "res4", "res5"]
    # every classifier (decode head and auxiliary heads) predicts the dataset's classes
    out_channels = {
        m.out_channels for m in net.aux_heads.modules() if isinstance(m, torch.nn.Conv2d)
    }
    assert k in out_channels
    with torch.no_grad():
        out = net([{"image": torch.zeros(3, 40, 56, dtype=torch.uint8), "height": 40, "width": 56}])
    assert out[0]["sem_seg"].shape == (k, 40, 56)


# --------------------------------------------------------------- one training step per dataset
STEP = {"cityscapes": "ccnet", "voc": "pspnet", "context59": "deeplabv3plus", "nyuv2": "ocrnet"}


@pytest.mark.parametrize("dataset", list(STEP))
def test_one_tiny_training_step_per_dataset(dataset):
    model, k = STEP[dataset], DATASETS[dataset][2]
    cfg = tiny_config(config_path(model, dataset))
    torch.manual_seed(0)
    net = build_model(cfg).train()
    g = torch.Generator().manual_seed(1)
    batch = []
    for _ in range(2):
        sem = torch.randint(0, k, (48, 48), generator=g)
        sem[:3] = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        sem[-1, -1] = k - 1  # the last class: a head with fewer outputs fails the CE
        img = torch.randint(0, 256, (3, 48, 48), generator=g, dtype=torch.uint8)
        batch.append({"image": img, "sem_seg": sem, "height": 48, "width": 48})
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    losses = net(batch)
    assert {f"loss_aux_res{i}" for i in (2, 3, 4, 5)} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    opt.zero_grad()
    total.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(gr is None or torch.isfinite(gr).all() for gr in grads)
    assert any(gr is not None and gr.abs().sum() > 0 for gr in grads)
    opt.step()
