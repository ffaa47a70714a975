"""Table 1 on all four datasets (issue 13 item 2; issue 22 items 4-5): the grids
``table1_full.yaml`` (4 datasets x 7 models x {baseline, CPP} x 3 seeds), ``figure5_voc.yaml``
(PSPNet on VOC, 0-4 heads x {up-sampled CE, CPP}) and ``figure5_voc_all.yaml`` (the same for the
seven models), and the per-dataset configs ``VOC/``, ``Context/``, ``NYUv2/``:

* the grids expand to the expected cells, and render on an empty output folder;
* every cell's config is the per-dataset, per-model file (the grid names it, it exists and
  resolves); its dataset's class count and Table 2 instance classes are those of the datasets the
  file registers; each GPU takes MMSegmentation's batch (Cityscapes 2, VOC / Context 4);
* every config builds its model on CPU (tiny widths: ResNet-18 / HRNet-W18-small, 16-channel heads)
  with the dataset's number of classes;
* one tiny training step (forward + backward, finite loss) per dataset, random images and labels
  of that dataset's class count.
"""

import os

import pytest
import torch
from markdown_rows import rows_starting, table_rows

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
FIGURE5_ALL_GRID = os.path.join(GRID_DIR, "figure5_voc_all.yaml")

MODELS = {  # grid model name -> (config file stem, decode head)
    "pspnet": ("pspnet_R101", "psp"),
    "deeplabv3plus": ("deeplabv3plus_R101", "deeplabv3plus"),
    "upernet": ("upernet_R101", "upernet"),
    "dmnet": ("dmnet_R101", "dmnet"),
    "ccnet": ("ccnet_R101", "ccnet"),
    "ann": ("ann_R101", "ann"),
    "ocrnet": ("ocrnet_HRW48", "ocr"),
}
DATASETS = {  # grid dataset name -> (config folder, file suffix, MMSegmentation images per GPU)
    "cityscapes": ("", "cityscapes", 2),
    "voc": ("VOC", "voc", 4),
    "context60": ("Context", "context60", 4),
    "nyuv2": ("NYUv2", "nyuv2", 4),
}
#: the 59-class Pascal Context switch (the commented block of table1_full.yaml)
CONTEXT59 = ("Context", "context59", 4)


def config_path(model, dataset):
    folder, suffix = (CONTEXT59 if dataset == "context59" else DATASETS[dataset])[:2]
    return os.path.join(CFG_DIR, folder, f"{MODELS[model][0]}_{suffix}.yaml")


ALL_CONFIGS = [(m, d) for d in [*DATASETS, "context59"] for m in MODELS]


def dataset_classes(cfg):
    """The class names of the config's test set, as registered (what the per-class IoUs are
    named after)."""
    from detectron2.data import MetadataCatalog

    from seethroughnet.data.datasets import register_all

    register_all()
    return list(MetadataCatalog.get(cfg.DATASETS.TEST[0]).stuff_classes)


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


@pytest.fixture(scope="module")
def figure5_all_grid():
    return cpp_study.load_grid(FIGURE5_ALL_GRID)


# ------------------------------------------------------------------------------------------ grids
def test_table1_grid_has_4x7x2x3_cells(table1_grid):
    cells = cpp_study.expand_grid(table1_grid)
    assert len(cells) == 4 * 7 * 2 * 3
    assert list(table1_grid["models"]) == list(MODELS)
    assert list(table1_grid["datasets"]) == list(DATASETS)
    assert {(c["model"], c["dataset"]) for c in cells} == {(m, d) for d in DATASETS for m in MODELS}
    pairs = {(c["loss"], c["num_heads"]) for c in cells}
    assert pairs == {("upsample_ce", 4), ("cpp_kl", 4)}
    assert sorted({c["seed"] for c in cells}) == [0, 1, 2]
    # a cell's config is the per-dataset, per-model file; the grid copies none of its values
    for c in cells:
        assert os.path.join(REPO, c["config"]) == config_path(c["model"], c["dataset"]), c["id"]
        assert c["opts"][0] == "MODEL.CPP_AUX.ENABLED", c["opts"]  # variant + seed only
    for d in table1_grid["datasets"].values():
        assert set(d) == {"config", "gpus", "instance_classes"}
    # Table 2: instance classes given for every dataset, Cityscapes = its 8 "thing" classes
    things = {"person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"}
    assert set(table1_grid["datasets"]["cityscapes"]["instance_classes"]) == things
    assert all(d.get("instance_classes") for d in table1_grid["datasets"].values())


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_instance_classes_are_class_names_of_the_configs_dataset(dataset, table1_grid):
    """Table 2 matches the instance classes against the per-class IoU names (the classes the
    cell's config file registers): a misspelt name would silently count as non-instance. Read
    from the resolved files, so a dataset switch in the files (Context 59 -> 60) is checked too."""
    inst = table1_grid["datasets"][dataset]["instance_classes"]
    for model in MODELS:
        cfg = build_config(config_path(model, dataset))
        names = dataset_classes(cfg)
        assert len(names) == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, (model, dataset)
        assert set(inst) <= set(names), set(inst) - set(names)
    if dataset == "nyuv2":
        assert len(inst) == 18  # ScanNet's 18


def test_context59_stays_one_switch_away(table1_grid):
    """The commented context59 block of table1_full.yaml: the _context59 files exist for every
    model, and the block swapped in gives cells on them."""
    import yaml

    with open(TABLE1_GRID) as f:
        text = f.read()
    block = text[text.index("  # context59:") : text.index("  nyuv2:")]
    uncommented = "\n".join(line.replace("  # ", "  ", 1) for line in block.splitlines())
    d59 = yaml.safe_load("datasets:\n" + uncommented)["datasets"]["context59"]
    grid = {**table1_grid, "datasets": {"context59": d59}}
    cells = cpp_study.expand_grid(grid)
    assert {c["config"] for c in cells} == {
        os.path.relpath(config_path(m, "context59"), REPO) for m in MODELS
    }
    assert d59["instance_classes"] == table1_grid["datasets"]["context60"]["instance_classes"]
    assert all(os.path.isfile(config_path(m, "context59")) for m in MODELS)


@pytest.mark.parametrize("model,dataset", ALL_CONFIGS)
def test_every_cell_config_exists_and_resolves(model, dataset, table1_grid):
    """Every config a cell of the grids names (and the 59-class switch) exists and builds,
    ``_BASE_`` chain included, with the cell's options; each of a cell's ``gpus`` processes takes
    MMSegmentation's images per GPU (SOLVER.IMS_PER_BATCH = gpus x images per GPU)."""
    path = config_path(model, dataset)
    assert os.path.isfile(path), path
    d = table1_grid["datasets"].get(dataset, table1_grid["datasets"]["context60"])
    cell = next(
        c for c in cpp_study.expand_grid(table1_grid) if c["model"] == model and c["seed"] == 0
    )
    cfg = build_config(path, cell["opts"])
    assert cfg.MODEL.META_ARCHITECTURE == "CPPSegmentor"
    assert cfg.MODEL.DECODE_HEAD.NAME == MODELS[model][1]
    assert cfg.MODEL.CPP_AUX.ENABLED and cfg.MODEL.CPP_AUX.NUM_HEADS == 4
    stem = MODELS[model][0]
    suffix = (CONTEXT59 if dataset == "context59" else DATASETS[dataset])[1]
    assert cfg.OUTPUT_DIR == f"output/cpp_plugin/{stem}_{suffix}"
    per_gpu = (CONTEXT59 if dataset == "context59" else DATASETS[dataset])[2]
    assert d["gpus"] == 4 and cfg.SOLVER.IMS_PER_BATCH == d["gpus"] * per_gpu


def test_a_cell_without_a_config_is_named(table1_grid):
    with pytest.raises(ValueError, match="g.yaml: model 'x' on dataset 'cityscapes': no config"):
        cpp_study.check_grid({**table1_grid, "models": {"x": {}}}, "g.yaml")
    with pytest.raises(ValueError, match="may only use {stem}"):
        bad = {"voc": {"config": "VOC/{model}_voc.yaml"}}
        cpp_study.check_grid({**table1_grid, "datasets": bad}, "g.yaml")


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


@pytest.mark.parametrize("which", ["figure5", "figure5_all"])
def test_figure5_4_head_cells_are_table1_voc_cells(
    which, figure5_grid, figure5_all_grid, table1_grid
):
    """REPRODUCE.md runs the Figure 5 grids with Table 1's ``--out``: every 4-head cell resolves to
    the folder of a Table 1 VOC cell and trains exactly that run (same config file, same overrides
    with the same ImageNet files, same GPUs), so a finished Table 1 cell is not trained twice."""
    extra = ["MODEL.RESNETS.IMAGENET_CHECKPOINT", "r.pth", "MODEL.HRNET.CHECKPOINT", "h.pth"]
    fig = {"figure5": figure5_grid, "figure5_all": figure5_all_grid}[which]
    fig = {**fig, "opts": list(fig.get("opts") or []) + extra}
    t1 = {**table1_grid, "opts": list(table1_grid.get("opts") or []) + extra}
    table1_cells = {c["id"]: c for c in cpp_study.expand_grid(t1)}
    four = [c for c in cpp_study.expand_grid(fig) if c["num_heads"] == 4]
    assert len(four) == len(cpp_study_report.figure5_models(fig)) * 2 * 3
    for c in four:
        same = table1_cells[c["id"]]
        assert same["dataset"] == "voc" and (same["loss"], same["num_heads"]) == (c["loss"], 4)
        assert (same["config"], same["opts"], same["gpus"]) == (c["config"], c["opts"], c["gpus"])
        # the opts say what the cell folder name says
        assert c["opts"][c["opts"].index("MODEL.CPP_AUX.LOSS") + 1] == c["loss"]
        assert c["opts"][c["opts"].index("SEED") + 1] == str(c["seed"])


def test_figure5_all_models_grid_is_the_pspnet_sweep_for_each_model(
    figure5_all_grid, figure5_grid, table1_grid
):
    cells = cpp_study.expand_grid(figure5_all_grid)
    assert len(cells) == 7 * (1 + 4 * 2) * 3
    assert cpp_study_report.figure5_models(figure5_all_grid) == list(MODELS)
    assert figure5_all_grid["datasets"]["voc"] == table1_grid["datasets"]["voc"]
    psp = {c["id"]: c for c in cells if c["model"] == "pspnet"}
    assert psp == {c["id"]: c for c in cpp_study.expand_grid(figure5_grid)}
    for model in MODELS:
        mine = [c for c in cells if c["model"] == model]
        assert {(c["loss"], c["num_heads"]) for c in mine} == {("none", 0)} | {
            (loss, n) for loss in ("upsample_ce", "cpp_kl") for n in (1, 2, 3, 4)
        }
        assert {c["config"] for c in mine} == {os.path.relpath(config_path(model, "voc"), REPO)}
    t1_ids = {c["id"] for c in cpp_study.expand_grid(table1_grid)}
    assert {c["id"] for c in cells if c["num_heads"] == 4} <= t1_ids


@pytest.mark.parametrize("which", ["table1", "figure5", "figure5_all"])
def test_grids_render_on_an_empty_output_folder(
    which, table1_grid, figure5_grid, figure5_all_grid, tmp_path
):
    grid = {"table1": table1_grid, "figure5": figure5_grid, "figure5_all": figure5_all_grid}[which]
    text = cpp_study.render(grid, str(tmp_path))
    n = len(cpp_study.expand_grid(grid))
    assert f"Cells: {n} (0 ok, 0 failed, {n} pending)." in text
    rows = table_rows(cpp_study_report.table1(grid, []))[1:]  # header off
    assert len(rows) == len(grid["models"]) * len(grid["datasets"])
    if which.startswith("figure5"):
        fig5_rows = rows_starting(text, "4", "n/a", "n/a")
        assert len(fig5_rows) == len(cpp_study_report.figure5_models(grid))
    assert os.path.isfile(tmp_path / "results.jsonl")


# ----------------------------------------------------------------------------- tiny CPU builds
@pytest.mark.parametrize("model,dataset", ALL_CONFIGS)
def test_every_config_builds_on_cpu(model, dataset):
    cfg = tiny_config(config_path(model, dataset))
    k = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    assert k == len(dataset_classes(cfg))
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
STEP = {"cityscapes": "ccnet", "voc": "pspnet", "context60": "deeplabv3plus", "nyuv2": "ocrnet"}


@pytest.mark.parametrize("dataset", list(STEP))
def test_one_tiny_training_step_per_dataset(dataset):
    model = STEP[dataset]
    cfg = tiny_config(config_path(model, dataset))
    k = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
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
