"""The synthetic Cityscapes-format dataset: determinism, on-disk format, agreement of the JSON and
the label PNGs, cityscapesscripts' evaluation and detectron2's Cityscapes loaders on it, and the
manifest's rules in test_synthetic_writer.py.

One small dataset (128 x 256, 4 train / 4 val / 2 test images) is generated once per module.
"""

import glob
import hashlib
import json
import os
import re
from collections import Counter

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import id2label, labels, name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from markdown_rows import row_starting, table_rows
from PIL import Image

from seethroughnet.data import synthetic as sc

from synthetic_files import all_files, read_bytes  # tests/data/synthetic_files.py (a helper)

H, W = 128, 256
SEED = 3
NUM = {"train": 4, "val": 4, "test": 2}
KINDS = ("image", "polygons", "labelIds", "instanceIds", "labelTrainIds", "color")


def _samples(root, splits=("train", "val", "test")):
    for split in splits:
        for i in range(NUM[split]):
            yield split, i, sc.sample_paths(root, split, i)


def _png(path):
    return np.asarray(Image.open(path))


def _png_instance_counts(inst):
    """Independent reading of an instanceIds PNG: per class, (#instances, #crowd regions)."""
    counts = Counter()
    for v in np.unique(inst):
        v = int(v)
        if v >= 1000:
            counts[(id2label[v // 1000].name, False)] += 1
        elif id2label[v].hasInstances:
            counts[(id2label[v].name, True)] += 1
    return counts


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic") / "cityscapes")
    manifest = sc.generate_synthetic_cityscapes(
        root, seed=SEED, height=H, width=W, num_images=NUM, progress=False
    )
    return root, manifest


# --- (a) determinism ---------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files(dataset, tmp_path):
    root, _ = dataset
    again = str(tmp_path / "again")
    sc.generate_synthetic_cityscapes(
        again, seed=SEED, height=H, width=W, num_images=NUM, progress=False
    )
    a, b = all_files(root), all_files(again)
    assert sorted(a) == sorted(b)
    for rel in a:
        assert read_bytes(a[rel]) == read_bytes(b[rel]), rel


# SHA-256 over the arrays and the polygon text of ``render_sample(11, split, index, 64, 128,
# test_gt)``, pinned with the single-module generator at commit 5257496
# (seethroughnet/data/synthetic_cityscapes.py) before it was split into the package: the split
# changed no output. An intended change of the output bumps GENERATOR_VERSION and re-pins these
# (tools/compare_synthetic_generators.py compares whole datasets against a git revision). Arrays,
# not PNG bytes: independent of the zlib build.
PINNED_SAMPLE_DIGESTS = {
    ("train", 0, "dummy"): "e5613e0bb89d53123190070667cc5cc77078c317f599c034dbecfbcb971d837a",
    ("train", 1, "dummy"): "536e64c079ff67a01fa78185047b505a334494e81ee4176c69d729f5fe54d13a",
    ("val", 2, "dummy"): "19c23f284370dd3c98bae46f5321f2c652597fe8cf1fd181ec2be6892e20857c",
    ("test", 0, "dummy"): "0074d395329db232b69fcfa6f3f408172adac4c0559e844091ee5091b67ab6c5",
    ("test", 1, "full"): "0a9ad770904cd3c1ef7f1d15a4e78deebf81b4cd7d91d189c7de143b77943c12",
}


@pytest.mark.parametrize("split,index,test_gt", sorted(PINNED_SAMPLE_DIGESTS))
def test_samples_match_the_pinned_generator_output(split, index, test_gt):
    assert sc.GENERATOR_VERSION == 1, "the output changed on purpose: re-pin PINNED_SAMPLE_DIGESTS"
    sample = sc.render_sample(11, split, index, 64, 128, test_gt)
    digest = hashlib.sha256()
    for kind in ("image", "labelIds", "labelTrainIds", "color", "instanceIds"):
        digest.update(sample[kind].tobytes())
    digest.update(sample["polygons"].encode())
    assert digest.hexdigest() == PINNED_SAMPLE_DIGESTS[(split, index, test_gt)]


def test_other_seed_differs_and_counts_do_not_change_other_images(dataset, tmp_path):
    root, _ = dataset
    other = str(tmp_path / "other")
    sc.generate_synthetic_cityscapes(
        other, seed=SEED + 1, height=H, width=W, num_images={"train": 2}, progress=False
    )
    for i in range(2):
        for kind in ("image", "polygons", "labelIds"):
            assert read_bytes(sc.sample_paths(root, "train", i)[kind]) != read_bytes(
                sc.sample_paths(other, "train", i)[kind]
            )
    # each image is seeded from (seed, split, index): fewer images, same files
    fewer = str(tmp_path / "fewer")
    sc.generate_synthetic_cityscapes(
        fewer, seed=SEED, height=H, width=W, num_images={"train": 2, "val": 1}, progress=False
    )
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            for kind in KINDS:
                assert read_bytes(sc.sample_paths(root, split, i)[kind]) == read_bytes(
                    sc.sample_paths(fewer, split, i)[kind]
                )


# --- (b) layout, label values, agreement --------------------------------------------------------
def test_cityscapes_layout_and_nothing_else(dataset):
    root, manifest = dataset
    expected = {sc.MANIFEST_NAME}
    for split, i, paths in _samples(root):
        expected |= {os.path.relpath(p, root) for p in paths.values()}
        city, stem = sc.sample_name(split, i)
        assert re.fullmatch(r"[a-z]+_\d{6}_\d{6}", stem) and stem.startswith(city + "_")
        assert paths["image"] == os.path.join(
            root, "leftImg8bit", split, city, stem + "_leftImg8bit.png"
        )
        for kind in ("labelIds", "instanceIds", "labelTrainIds", "color"):
            assert paths[kind] == os.path.join(
                root, "gtFine", split, city, f"{stem}_gtFine_{kind}.png"
            )
        assert paths["polygons"] == os.path.join(
            root, "gtFine", split, city, stem + "_gtFine_polygons.json"
        )
    assert set(all_files(root)) == expected  # no temporary or stray files
    assert manifest["complete"] is True and manifest["params"]["num_images"] == NUM
    # cities are spread: every split uses more than one made-up city
    for split in ("train", "val", "test"):
        assert len(os.listdir(os.path.join(root, "leftImg8bit", split))) >= 2


def test_image_formats(dataset):
    root, _ = dataset
    for _, _, p in _samples(root):
        img = Image.open(p["image"])
        assert img.mode == "RGB" and img.size == (W, H)
        assert Image.open(p["labelIds"]).mode == "L" and Image.open(p["labelTrainIds"]).mode == "L"
        assert Image.open(p["color"]).mode == "RGBA"
        inst = _png(p["instanceIds"])
        assert inst.dtype == np.uint16 and inst.shape == (H, W)
        a = np.asarray(img).astype(float)
        assert (
            a.std() > 20 and len(np.unique(a.reshape(-1, 3), axis=0)) > 1000
        )  # a textured scene, not flat colour


def test_label_pngs_hold_only_ids_of_the_label_table(dataset):
    root, _ = dataset
    ids = {l.id for l in labels if l.id >= 0}
    train_ids = {l.trainId for l in labels if l.id >= 0}
    for _, _, p in _samples(root):
        assert set(np.unique(_png(p["labelIds"])).tolist()) <= ids
        assert set(np.unique(_png(p["labelTrainIds"])).tolist()) <= train_ids
        for v in np.unique(_png(p["instanceIds"])).tolist():
            if v >= 1000:
                assert id2label[v // 1000].hasInstances, v
            else:
                assert v in ids, v


def test_label_images_agree_through_the_label_table(dataset):
    root, _ = dataset
    lut_train = np.full(256, -1, np.int64)
    lut_color = np.zeros((256, 3), np.int64)
    for l in labels:
        if l.id >= 0:
            lut_train[l.id] = l.trainId
            lut_color[l.id] = l.color
    for _, _, p in _samples(root):
        lab = _png(p["labelIds"]).astype(np.int64)
        inst = _png(p["instanceIds"]).astype(np.int64)
        assert np.array_equal(np.where(inst >= 1000, inst // 1000, inst), lab)
        assert np.array_equal(lut_train[lab], _png(p["labelTrainIds"]))
        color = _png(p["color"])
        assert np.array_equal(color[..., :3], lut_color[lab]) and (color[..., 3] == 255).all()
        # instance ids of a class are labelId*1000 + 0..n-1 (cityscapesscripts' numbering), all
        # visible: the generator never writes a thing polygon that ends up hidden
        for lid in {int(v) // 1000 for v in np.unique(inst) if v >= 1000}:
            ks = sorted(int(v) % 1000 for v in np.unique(inst) if v // 1000 == lid)
            assert ks == list(range(len(ks)))


def test_polygon_json_is_cityscapes_format_and_rasterises_to_the_pngs(dataset):
    root, _ = dataset
    for split, _, p in _samples(root):
        with open(p["polygons"]) as f:
            data = json.load(f)
        assert set(data) == {"imgHeight", "imgWidth", "objects"}
        assert (data["imgHeight"], data["imgWidth"]) == (H, W)
        for obj in data["objects"]:
            assert set(obj) == {"label", "polygon"}
            name = obj["label"]
            assert name in name2label or (name.endswith("group") and name[:-5] in name2label)
            poly = np.array(obj["polygon"])
            assert (
                poly.ndim == 2 and poly.shape[1] == 2 and len(poly) >= 3 and poly.dtype.kind == "i"
            )
            assert poly.min() >= 0 and poly[:, 0].max() < W and poly[:, 1].max() < H
        ann = Annotation()
        ann.fromJsonFile(p["polygons"])  # cityscapesscripts' own reader and rasteriser
        assert np.array_equal(np.asarray(createLabelImage(ann, "ids")), _png(p["labelIds"]))
        assert np.array_equal(
            np.asarray(createLabelImage(ann, "trainIds")), _png(p["labelTrainIds"])
        )
        assert np.array_equal(np.asarray(createLabelImage(ann, "color")), _png(p["color"]))
        assert np.array_equal(
            np.asarray(createInstanceImage(ann, "ids")), _png(p["instanceIds"]).astype(np.int32)
        )
        if (
            split != "test"
        ):  # painted objects: every thing polygon in the JSON is visible in the PNG
            n_json = Counter(
                o["label"]
                for o in data["objects"]
                if name2label[sc.base_label(o["label"])].hasInstances
            )
            n_png = _png_instance_counts(_png(p["instanceIds"]))
            assert sum(n_json.values()) == sum(n_png.values())


def test_cityscapesscripts_preparation_reproduces_the_train_id_images(
    dataset, tmp_path, monkeypatch
):
    """Running cityscapesscripts' createTrainIdLabelImgs (the real-Cityscapes preparation step) on a
    copy of the generated gtFine rewrites exactly the labelTrainIds the generator wrote."""
    import shutil

    from cityscapesscripts.preparation import createTrainIdLabelImgs

    root, _ = dataset
    copy = tmp_path / "cs"
    shutil.copytree(os.path.join(root, "gtFine"), copy / "gtFine")
    for f in glob.glob(str(copy / "gtFine" / "*" / "*" / "*_labelTrainIds.png")):
        os.remove(f)
    monkeypatch.setenv("CITYSCAPES_DATASET", str(copy))
    createTrainIdLabelImgs.main()
    for split, _, p in _samples(root):
        redone = str(copy / os.path.relpath(p["labelTrainIds"], root))
        assert np.array_equal(_png(redone), _png(p["labelTrainIds"]))


def test_void_regions_and_dummy_test_labels(dataset):
    root, _ = dataset
    void = {l.id for l in labels if l.ignoreInEval and l.id >= 0}
    seen_void = set()
    for _, _, p in _samples(root, ("train", "val")):
        seen_void |= set(np.unique(_png(p["labelIds"])).tolist()) & void
    assert 1 in seen_void  # ego vehicle, as in Cityscapes
    for _, _, p in _samples(root, ("test",)):
        lab = _png(p["labelIds"])
        assert set(np.unique(lab).tolist()) <= {
            0,
            1,
            2,
            3,
        }  # unlabeled + ego vehicle/rectification/out of roi
        assert (_png(p["labelTrainIds"]) == 255).all() and (_png(p["instanceIds"]) < 1000).all()
        assert np.asarray(Image.open(p["image"])).std() > 20  # but the image is a full scene
    full = sc.render_sample(SEED, "test", 0, H, W, test_gt="full")
    dummy = sc.render_sample(SEED, "test", 0, H, W)
    assert np.array_equal(full["image"], dummy["image"])
    assert np.isin(full["labelIds"], [7, 11, 23]).any()  # road/building/sky in the full variant


def test_all_thing_classes_appear_and_are_imbalanced_like_cityscapes():
    """The default dataset (seed 0, 256 x 512): all eight thing classes in train and in val, with
    cars and persons common and truck/bus/train/motorcycle rare."""
    for split in ("val", "train"):
        counts = Counter()
        for i in range(sc.DEFAULT_NUM_IMAGES[split]):
            counts.update(sc.scene_instance_counts(0, split, i))
        for cls in sc.THING_CLASSES:
            assert counts[cls] >= 1, (split, cls, counts)
    assert counts["car"] > counts["person"] > counts["bicycle"]
    for rare in ("truck", "bus", "train", "motorcycle"):
        assert counts[rare] < 0.1 * counts["car"] and counts[rare] < 0.25 * counts["person"], counts


def test_statistics_match_the_manifest(dataset):
    root, manifest = dataset
    stats = sc.compute_statistics(root, splits=("train", "val"))
    for split in ("train", "val"):
        st = stats[split]
        assert st["images"] == NUM[split]
        assert abs(sum(st["pixels"].values()) - 1.0) < 1e-9
        measured = dict(st["instances"])
        measured.update({k + "group": v for k, v in st["groups"].items()})
        assert measured == manifest["instances"][split]
    table = sc.format_statistics(stats)
    rows = table_rows(table)  # header, 19 classes, void, images; the separator is not a row
    assert len(rows) == len(table.splitlines()) - 1 == 1 + 19 + 2
    header = ["class", "trainId", "train pixels %", "val pixels %"]
    assert rows[0] == header + ["train instances", "val instances"]
    groups = stats["train"]["groups"].get("car")
    car = str(stats["train"]["instances"]["car"]) + (f" (+{groups} groups)" if groups else "")
    assert row_starting(table, "car", "13")[4] == car
    images = row_starting(table, "images")
    assert images == ["images", "", str(NUM["train"]), str(NUM["val"]), "", ""]


# --- (c) cityscapesscripts' evaluation: ground truth as prediction scores 100 % -----------------
@pytest.mark.filterwarnings("ignore:.*in1d.*:DeprecationWarning")
def test_cityscapes_evaluation_of_ground_truth_is_perfect(dataset, tmp_path, monkeypatch):
    root, _ = dataset
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    # cityscapesscripts 2.3 calls np.in1d, deprecated in numpy 2 (and gone in some builds); np.isin
    # replaces it.
    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)
    pred_dir = tmp_path / "results"
    pred_dir.mkdir()
    for _, i, p in _samples(root, ("val",)):
        stem = sc.sample_name("val", i)[1]
        Image.open(p["labelIds"]).save(pred_dir / f"{stem}_pred.png")
    args = ev.args
    for k, v in dict(
        cityscapesPath=root,
        predictionPath=str(pred_dir),
        predictionWalk=None,
        quiet=True,
        JSONOutput=False,
        colorized=False,
        bold="",
        nocol="",
        evalInstLevelScore=True,
        evalPixelAccuracy=False,
        exportFile=str(tmp_path / "result.json"),
        groundTruthSearch=os.path.join(root, "gtFine", "val", "*", "*_gtFine_labelIds.png"),
    ).items():
        monkeypatch.setattr(args, k, v, raising=False)
    gts = sorted(glob.glob(args.groundTruthSearch))
    assert len(gts) == NUM["val"]
    preds = [ev.getPrediction(args, gt) for gt in gts]
    result = ev.evaluateImgLists(preds, gts, args)
    assert result["averageScoreClasses"] == pytest.approx(1.0)
    assert result["averageScoreInstClasses"] == pytest.approx(1.0)
    present = {id2label[int(v)].name for gt in gts for v in np.unique(_png(gt))}
    scored = {k: v for k, v in result["classScores"].items() if not np.isnan(v)}
    assert (
        set(scored) == {n for n in present if not name2label[n].ignoreInEval} and len(scored) >= 8
    )
    assert all(v == pytest.approx(1.0) for v in scored.values())


# --- (d) detectron2's builtin Cityscapes loaders --------------------------------------------------
def _d2_counts(records):
    from cityscapesscripts.helpers.labels import labels as all_labels

    things = [l.name for l in all_labels if l.hasInstances and not l.ignoreInEval]
    out = {}
    for r in records:
        c = Counter((things[a["category_id"]], bool(a["iscrowd"])) for a in r["annotations"])
        out[os.path.basename(r["file_name"])] = c
    return out


def _png_counts(root, split):
    out = {}
    for _, _, p in _samples(root, (split,)):
        c = _png_instance_counts(_png(p["instanceIds"]))
        # detectron2 loads only classes that are evaluated (caravan/trailer are not generated
        # anyway)
        out[os.path.basename(p["image"])] = Counter(
            {k: v for k, v in c.items() if not name2label[k[0]].ignoreInEval}
        )
    return out


@pytest.mark.parametrize("split", ["train", "val"])
def test_detectron2_semantic_loader(dataset, split):
    pytest.importorskip("detectron2")
    from detectron2.data.datasets.cityscapes import load_cityscapes_semantic

    root, _ = dataset
    recs = load_cityscapes_semantic(
        os.path.join(root, "leftImg8bit", split), os.path.join(root, "gtFine", split)
    )
    assert len(recs) == NUM[split]
    expected = {
        sc.sample_paths(root, split, i)["image"]: sc.sample_paths(root, split, i)["labelTrainIds"]
        for i in range(NUM[split])
    }
    for r in recs:
        assert expected[r["file_name"]] == r["sem_seg_file_name"] and (r["height"], r["width"]) == (
            H,
            W,
        )


@pytest.mark.parametrize("from_json", [False, True])
def test_detectron2_instance_loader_finds_exactly_the_generated_instances(dataset, from_json):
    pytest.importorskip("detectron2")
    if from_json:
        pytest.importorskip("shapely", reason="detectron2 reads Cityscapes polygons with shapely")
    from detectron2.data.datasets.cityscapes import load_cityscapes_instances

    root, _ = dataset
    total = Counter()
    for split in ("train", "val"):
        recs = load_cityscapes_instances(
            os.path.join(root, "leftImg8bit", split),
            os.path.join(root, "gtFine", split),
            from_json=from_json,
            to_polygons=True,
        )
        assert len(recs) == NUM[split]
        got, want = _d2_counts(recs), _png_counts(root, split)
        assert got == want
        for r in recs:
            assert (r["height"], r["width"]) == (H, W)
            for a in r["annotations"]:
                x0, y0, x1, y1 = a["bbox"]
                assert -1 <= x0 < x1 <= W + 1 and -1 <= y0 < y1 <= H + 1
        for c in want.values():
            total.update(c)
    assert sum(v for (_, crowd), v in total.items() if not crowd) >= 10  # the check is not vacuous


def test_detectron2_png_loader_boxes_are_the_instance_masks_boxes(dataset):
    pytest.importorskip("detectron2")
    from detectron2.data.datasets.cityscapes import load_cityscapes_instances

    root, _ = dataset
    recs = load_cityscapes_instances(
        os.path.join(root, "leftImg8bit", "val"),
        os.path.join(root, "gtFine", "val"),
        from_json=False,
        to_polygons=False,
    )
    for r in recs:
        inst = _png(
            r["file_name"]
            .replace("leftImg8bit", "gtFine", 1)
            .replace("_leftImg8bit.png", "_gtFine_instanceIds.png")
        )
        boxes = set()
        for v in np.unique(inst):
            if v >= 1000 or id2label[int(v)].hasInstances:
                ys, xs = np.nonzero(inst == v)
                boxes.add((xs.min(), ys.min(), xs.max(), ys.max()))
        assert {tuple(int(c) for c in a["bbox"]) for a in r["annotations"]} == boxes
