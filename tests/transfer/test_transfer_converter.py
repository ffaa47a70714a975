"""Cityscapes gtFine -> COCO converter (transfer/cityscapes_to_coco.py): exact boxes, areas and
counts on hand-built maps, crowd handling, pycocotools round trip, agreement with detectron2's
own Cityscapes loader, and clear errors on bad input."""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from transfer.cityscapes_to_coco import (
    THING_CLASSES,
    CityscapesConversionError,
    convert_cityscapes,
    convert_split,
    default_output_path,
    per_class_counts,
    rasterize_polygons,
)

H, W = 32, 48


def _write_sample(
    root, split, city, stem, inst, image_size=None, polygons=None, inst_dtype=np.uint16
):
    img_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    h, w = image_size or inst.shape
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
    if inst is not None:
        Image.fromarray(inst.astype(inst_dtype)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
        Image.fromarray(label).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    if polygons is not False:  # detectron2's loader wants the JSON to exist even when reading PNGs
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(
            json.dumps({"imgHeight": h, "imgWidth": w, "objects": polygons or []})
        )


def _hand_map():
    inst = np.full((H, W), 7, np.int32)  # road (stuff)
    inst[2:6, 3:10] = 26000  # car: rows 2..5, cols 3..9 -> bbox [3, 2, 7, 4], area 28
    inst[10:20, 5:8] = 26001  # car, L-shape
    inst[17:20, 8:14] = 26001  #   -> bbox [5, 10, 9, 10], area 30 + 18 = 48
    inst[20:30, 30:34] = 24000  # person: bbox [30, 20, 4, 10], area 40
    inst[0:8, 36:46] = 26  # cargroup (crowd): bbox [36, 0, 10, 8], area 80
    inst[25:30, 2:6] = 29000  # caravan: hasInstances but ignoreInEval -> not a category
    inst[28, 10:20] = 33000  # bicycle one row high -> dropped (detectron2's rule)
    inst[22:26, 16:20] = 33001  # bicycle 4x4 -> bbox [16, 22, 4, 4], area 16
    return inst


@pytest.fixture
def hand_root(tmp_path):
    root = tmp_path / "cityscapes"
    _write_sample(root, "train", "aachen", "aachen_000000_000019", _hand_map())
    return root


def _by_id(coco):
    return {a["cityscapes_instance_id"]: a for a in coco["annotations"]}


def test_exact_boxes_areas_counts(hand_root):
    coco, stats = convert_split(str(hand_root), "train", progress=False)
    assert coco["images"] == [
        {
            "id": 1,
            "file_name": "aachen/aachen_000000_000019_leftImg8bit.png",
            "height": H,
            "width": W,
        }
    ]
    assert [c["id"] for c in coco["categories"]] == list(range(1, 9))
    assert [c["name"] for c in coco["categories"]] == list(THING_CLASSES)
    a = _by_id(coco)
    assert sorted(a) == [26, 24000, 26000, 26001, 33001]
    assert a[26000]["bbox"] == [3.0, 2.0, 7.0, 4.0] and a[26000]["area"] == 28
    assert a[26001]["bbox"] == [5.0, 10.0, 9.0, 10.0] and a[26001]["area"] == 48
    assert a[24000]["bbox"] == [30.0, 20.0, 4.0, 10.0] and a[24000]["area"] == 40
    assert a[33001]["bbox"] == [16.0, 22.0, 4.0, 4.0] and a[33001]["area"] == 16
    assert (
        a[24000]["category_id"] == 1
        and a[26000]["category_id"] == 3
        and a[33001]["category_id"] == 8
    )
    assert all(x["iscrowd"] == 0 for k, x in a.items() if k >= 1000)
    assert per_class_counts(coco["annotations"]) == {
        "person": 1,
        "rider": 0,
        "car": 2,
        "truck": 0,
        "bus": 0,
        "train": 0,
        "motorcycle": 0,
        "bicycle": 1,
    }
    assert stats.dropped_thin == 1 and stats.crowd["car"] == 1
    assert len({x["id"] for x in coco["annotations"]}) == 5 and all(
        x["image_id"] == 1 for x in coco["annotations"]
    )


def test_crowd_kept_as_rle_or_dropped(hand_root):
    coco, _ = convert_split(str(hand_root), "train", segmentation="polygon", progress=False)
    crowd = _by_id(coco)[26]
    assert crowd["iscrowd"] == 1 and crowd["category_id"] == 3
    assert (
        isinstance(crowd["segmentation"], dict) and crowd["area"] == 80
    )  # crowd: RLE even in polygon mode
    assert crowd["bbox"] == [36.0, 0.0, 10.0, 8.0]
    assert isinstance(_by_id(coco)[26000]["segmentation"], list)
    coco, stats = convert_split(str(hand_root), "train", crowd="drop", progress=False)
    assert 26 not in _by_id(coco) and stats.dropped_crowd == 1
    assert all(a["iscrowd"] == 0 for a in coco["annotations"])


def test_pycocotools_round_trip(hand_root, tmp_path):
    from pycocotools.coco import COCO

    out = convert_cityscapes(str(hand_root), ["train"], str(tmp_path / "ann"), progress=False)
    path = out["train"]["path"]
    assert path == default_output_path(str(hand_root), "train", str(tmp_path / "ann"))
    api = COCO(path)
    inst = _hand_map()
    for ann in api.loadAnns(api.getAnnIds()):
        m = api.annToMask(ann)
        expected = inst == ann["cityscapes_instance_id"]
        assert np.array_equal(m.astype(bool), expected)  # RLE: bit-exact
        assert m.sum() == ann["area"]
    # polygon mode: annToMask area close to the mask area (contours through boundary pixel centres)
    out = convert_cityscapes(
        str(hand_root), ["train"], str(tmp_path / "poly"), segmentation="polygon", progress=False
    )
    api = COCO(out["train"]["path"])
    for ann in api.loadAnns(api.getAnnIds(iscrowd=False)):
        m = api.annToMask(ann)
        assert abs(int(m.sum()) - ann["area"]) <= 0.6 * ann["area"]
        ys, xs = np.nonzero(m)
        x, y, w, h = ann["bbox"]
        assert xs.min() >= x and ys.min() >= y and xs.max() < x + w and ys.max() < y + h


def _d2_records(root, split, to_polygons):
    from detectron2.data.datasets.cityscapes import load_cityscapes_instances

    dicts = load_cityscapes_instances(
        str(root / "leftImg8bit" / split),
        str(root / "gtFine" / split),
        from_json=False,
        to_polygons=to_polygons,
    )
    return {os.path.basename(d["file_name"]): d for d in dicts}


def _assert_agrees_with_detectron2(root, split, segmentation):
    coco, _ = convert_split(str(root), split, segmentation=segmentation, progress=False)
    d2 = _d2_records(root, split, to_polygons=(segmentation == "polygon"))
    assert len(d2) == len(coco["images"])
    for img in coco["images"]:
        rec = d2[os.path.basename(img["file_name"])]
        assert (rec["height"], rec["width"]) == (img["height"], img["width"])
        ours = sorted(
            (
                a["category_id"] - 1,
                bool(a["iscrowd"]),
                a["bbox"][0],
                a["bbox"][1],
                a["bbox"][0] + a["bbox"][2] - 1,
                a["bbox"][1] + a["bbox"][3] - 1,
            )
            for a in coco["annotations"]
            if a["image_id"] == img["id"]
        )
        theirs = sorted(
            (a["category_id"], bool(a["iscrowd"])) + tuple(float(v) for v in a["bbox"])
            for a in rec["annotations"]
        )
        assert ours == theirs, img["file_name"]
    return coco


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_agrees_with_detectron2_loader_on_hand_map(hand_root, segmentation):
    _assert_agrees_with_detectron2(hand_root, "train", segmentation)


def test_agrees_with_detectron2_loader_on_synthetic_cityscapes(tmp_path):
    if importlib.util.find_spec("seethroughnet.data.synthetic") is None:
        pytest.skip("seethroughnet.data.synthetic (the synthetic generator) is not available yet")
    from seethroughnet.data.synthetic import generate_synthetic_cityscapes

    root = tmp_path / "synthetic"
    generate_synthetic_cityscapes(
        str(root),
        seed=0,
        height=64,
        width=128,
        num_images={"train": 3, "val": 2, "test": 0},
        progress=False,
    )
    coco = _assert_agrees_with_detectron2(root, "val", "rle")
    _assert_agrees_with_detectron2(root, "val", "polygon")
    assert coco["annotations"], "the synthetic val split should hold thing instances"
    # polygons source: the JSON rasterised like cityscapesscripts gives the same instances as the
    # PNG
    from_png, _ = convert_split(str(root), "val", progress=False)
    from_json, _ = convert_split(str(root), "val", source="polygons", progress=False)

    def key(coco_dict):
        return sorted(
            (a["image_id"], a["category_id"], a["iscrowd"], a["area"], tuple(a["bbox"]))
            for a in coco_dict["annotations"]
        )

    assert key(from_json) == key(from_png)


def test_polygons_source_matches_cityscapesscripts(tmp_path):
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage

    objects = [
        {"label": "road", "polygon": [[0, 0], [47, 0], [47, 31], [0, 31]]},
        {"label": "car", "polygon": [[3, 2], [12, 2], [12, 9], [3, 9]]},
        {"label": "cargroup", "polygon": [[30, 1], [45, 1], [45, 12]]},
        {
            "label": "person",
            "polygon": [[8, 5], [20, 5], [20, 25], [8, 25]],
        },  # overwrites part of the car
        {"label": "license plate", "polygon": [[5, 6], [8, 6], [8, 8], [5, 8]]},  # id -1: not drawn
        {"label": "car", "polygon": [[30, 20], [40, 20], [35, 30]], "deleted": 1},
        # degenerate polygons (issue #12): cityscapesscripts draws their outline pixels
        {"label": "vegetation", "polygon": [[30, 25], [44, 25], [37, 25]]},  # zero area
        {"label": "bicycle", "polygon": [[2, 28], [14, 30]]},  # 2 points
    ]
    root = tmp_path / "cs"
    _write_sample(
        root, "val", "lindau", "lindau_000000_000019", np.zeros((H, W), np.int32), polygons=objects
    )
    path = root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_polygons.json"
    ours = rasterize_polygons(str(path))
    ann = Annotation()
    ann.fromJsonFile(str(path))
    ref = np.asarray(createInstanceImage(ann, "ids"), dtype=np.int32)
    assert np.array_equal(ours, ref)
    coco, _ = convert_split(str(root), "val", source="polygons", progress=False)
    assert sorted(a["cityscapes_instance_id"] for a in coco["annotations"]) == [
        26,
        24000,
        26000,
        33000,
    ]


# ---------------------------------------------------------------------------------------- bad input
def test_8bit_instance_ids_is_an_error(tmp_path):
    root = tmp_path / "cs"
    _write_sample(
        root, "train", "a", "a_000000_000000", np.full((H, W), 7, np.int32), inst_dtype=np.uint8
    )
    with pytest.raises(
        CityscapesConversionError, match=r"a_000000_000000_gtFine_instanceIds\.png.*mode 'L'"
    ):
        convert_split(str(root), "train", progress=False)
    assert issubclass(CityscapesConversionError, ValueError)


def test_instance_ids_size_mismatch_is_an_error(tmp_path):
    root = tmp_path / "cs"
    _write_sample(root, "train", "a", "a_000000_000000", _hand_map(), image_size=(H, W + 16))
    with pytest.raises(
        CityscapesConversionError, match=r"instanceIds\.png: instanceIds size 48x32 .* image 64x32"
    ):
        convert_split(str(root), "train", progress=False)


def test_instance_ids_with_unknown_values_is_an_error(tmp_path):
    root = tmp_path / "cs"
    inst = _hand_map()
    inst[0, 0] = 40  # not a Cityscapes labelId
    _write_sample(root, "train", "a", "a_000000_000000", inst)
    with pytest.raises(CityscapesConversionError, match=r"instanceIds\.png: values \[40\]"):
        convert_split(str(root), "train", progress=False)


@pytest.mark.parametrize(
    "obj, match",
    [
        (
            {"label": "spaceship", "polygon": [[1, 1], [9, 1], [9, 9]]},
            r"objects\[1\] \(label 'spaceship'\): unknown.*--skip-invalid-polygons",
        ),
        (
            {"label": "car", "polygon": [[1, 1]]},
            r"objects\[1\] \(label 'car'\): polygon with 1 point.*--skip-invalid-polygons",
        ),
    ],
)
def test_bad_polygons_json_is_an_error(tmp_path, obj, match):
    root = tmp_path / "cs"
    objects = [{"label": "car", "polygon": [[3, 2], [12, 2], [12, 9], [3, 9]]}, obj]
    _write_sample(root, "val", "b", "b_000000_000000", None, image_size=(H, W), polygons=objects)
    with pytest.raises(
        CityscapesConversionError, match=r"b_000000_000000_gtFine_polygons\.json: " + match
    ):
        convert_split(str(root), "val", source="polygons", progress=False)
    coco, _ = convert_split(str(root), "val", source="polygons", on_invalid="skip", progress=False)
    assert len(coco["annotations"]) == 1


def test_missing_ground_truth_is_an_error(tmp_path):
    root = tmp_path / "cs"
    _write_sample(root, "train", "a", "a_000000_000000", None, image_size=(H, W))
    with pytest.raises(
        CityscapesConversionError, match=r"a_000000_000000_gtFine_instanceIds\.png is missing"
    ):
        convert_split(str(root), "train", progress=False)


def test_cli_writes_default_path(hand_root, capsys):
    from transfer.convert_cityscapes_to_coco import main

    assert main(["--root", str(hand_root), "--splits", "train", "--no-progress"]) == 0
    path = hand_root / "annotations" / "instancesonly_gtFine_train.json"
    data = json.loads(path.read_text())
    assert len(data["annotations"]) == 5 and data["info"]["stats"]["instances"]["car"] == 2
    bad = hand_root.parent / "nothing"
    assert main(["--root", str(bad), "--splits", "train", "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
