"""Tiny hand-made releases of VOC 2012 + SBD, Pascal Context and NYUv2 in their official formats
(the builders of tests/data/test_prepare_official_formats.py and of the REPRODUCE.md smoke runs).
``root`` is a :class:`pathlib.Path`, the datasets root the release is written under."""

from __future__ import annotations

import json
import os

import numpy as np
import scipy.io as sio
from PIL import Image

H, W = 6, 8  # every tiny image


def write_jpg(path, h=H, w=W):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def write_lines(path, ids):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{i}\n" for i in ids))


def savemat(path, variables):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sio.savemat(path, variables)


VOC_TRAIN, VOC_VAL = ["2007_000001", "2007_000002"], ["2007_000003"]
SBD_TRAIN, SBD_VAL = ["2007_000001", "2007_000003", "2008_000010"], ["2008_000011"]


def voc_label(seed) -> np.ndarray:
    """A VOC-style map: classes 0..20 and a 255 boundary row."""
    a = np.random.default_rng(seed).integers(0, 21, (H, W)).astype(np.uint8)
    a[2] = 255
    return a


def write_voc_png(path, label):
    """A palette PNG as VOC stores ``SegmentationClass`` (indices + a colour palette)."""
    im = Image.new("P", (label.shape[1], label.shape[0]))
    im.putdata(label.ravel().tolist())
    im.putpalette([(i * 37) % 256 for i in range(768)])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im.save(path)


CTX_TRAIN, CTX_VAL = ["2008_000002", "2008_000003"], ["2008_000007"]
#: the lists of the tiny ``trainval_merged.json``: one train image fewer than VOC 2010's Main list
#: (as MMSegmentation's 4,996 / 5,104 against 4,998 / 5,105) and a test-phase image to skip
DETAIL_TRAIN, DETAIL_VAL, DETAIL_TEST = ["2008_000002"], ["2008_000007"], ["2008_000010"]


N_FRAMES, TRAIN_FRAMES, TEST_FRAMES = 5, [1, 3, 4], [2, 5]


PIXEL = (3, 1, 4, (10, 20, 30))  # frame k (1-based), row, col, RGB


#: where each layout puts the SBD release's ``dataset/`` folder: the official archive unpacked
#: under the datasets root, MMSegmentation's dataset guide (``VOCdevkit/VOCaug/dataset``)
SBD_LAYOUTS = {"official": "benchmark_RELEASE/dataset", "mmseg": "VOCdevkit/VOCaug/dataset"}


def write_voc_release(root, sbd="official"):
    """VOC 2012 (JPEGImages, palette PNGs, train/val lists) + SBD ``dataset/`` (``cls/<id>.mat``
    with struct ``GTcls``, ``img/``, train/val lists) where the layout ``sbd`` of
    :data:`SBD_LAYOUTS` puts it, or no SBD with ``sbd=None``; returns ``(root, labels)``
    (``labels["voc"|"sbd"][id]``, the SBD maps made whether written or not)."""
    voc = root / "VOCdevkit/VOC2012"
    labels = {"voc": {}, "sbd": {}}
    for n, i in enumerate(VOC_TRAIN + VOC_VAL):
        write_jpg(voc / f"JPEGImages/{i}.jpg")
        labels["voc"][i] = voc_label(n)
        write_voc_png(voc / f"SegmentationClass/{i}.png", labels["voc"][i])
    write_lines(voc / "ImageSets/Segmentation/train.txt", VOC_TRAIN)
    write_lines(voc / "ImageSets/Segmentation/val.txt", VOC_VAL)
    for n, i in enumerate(SBD_TRAIN + SBD_VAL):
        labels["sbd"][i] = np.random.default_rng(100 + n).integers(0, 21, (H, W)).astype(np.uint8)
    if sbd is None:
        return root, labels
    folder = root / SBD_LAYOUTS[sbd]
    for i, seg in labels["sbd"].items():
        write_jpg(folder / f"img/{i}.jpg")
        gt = {"Segmentation": seg, "Boundaries": np.zeros((1, 1)), "CategoriesPresent": [1]}
        savemat(folder / f"cls/{i}.mat", {"GTcls": gt})
    write_lines(folder / "train.txt", SBD_TRAIN)
    write_lines(folder / "val.txt", SBD_VAL)
    return root, labels


#: the train_aug ids of the tiny release: (SBD train + val + VOC train) - VOC val, sorted
AUG_IDS = ["2007_000001", "2007_000002", "2008_000010", "2008_000011"]


def write_premade_aug(root, fmt):
    """VOC 2012 without SBD (:func:`write_voc_release` with ``sbd=None``) + an aug set already
    converted by another tool: every image in ``JPEGImages/`` (as VOC 2012 holds all SBD
    images), labels in ``SegmentationClassAug/`` (single-channel PNGs) and the list of ``fmt``:

    * ``"mmseg"``: MMSegmentation's ``tools/dataset_converters/voc_aug.py`` output: a label for
      every SBD id (SBD's map, VOC train ids included), ``ImageSets/Segmentation/trainaug.txt``
      ((VOC train + SBD) - VOC val) and ``aug.txt`` (SBD - VOC train - VOC val), bare ids in
      the unsorted order of a Python set;
    * ``"deeplab"``: DeepLab's ``ImageSets/SegmentationAug/train_aug.txt`` of
      ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`` pairs, a label for every train_aug
      id (VOC train's own for VOC train ids).

    Returns ``(root, labels)`` as :func:`write_voc_release`."""
    root, labels = write_voc_release(root, sbd=None)
    voc = root / "VOCdevkit/VOC2012"
    for i in SBD_TRAIN + SBD_VAL:
        if not (voc / f"JPEGImages/{i}.jpg").exists():
            write_jpg(voc / f"JPEGImages/{i}.jpg")
    os.makedirs(voc / "SegmentationClassAug")
    if fmt == "mmseg":
        for i, seg in labels["sbd"].items():
            Image.fromarray(seg).save(voc / f"SegmentationClassAug/{i}.png")
        sbd = set(SBD_TRAIN + SBD_VAL)
        trainaug = (set(VOC_TRAIN) | sbd) - set(VOC_VAL)
        aug = sbd - set(VOC_TRAIN) - set(VOC_VAL)
        write_lines(voc / "ImageSets/Segmentation/trainaug.txt", sorted(trainaug, reverse=True))
        write_lines(voc / "ImageSets/Segmentation/aug.txt", sorted(aug, reverse=True))
    elif fmt == "deeplab":
        for i in AUG_IDS:
            seg = labels["voc"][i] if i in VOC_TRAIN else labels["sbd"][i]
            Image.fromarray(seg).save(voc / f"SegmentationClassAug/{i}.png")
        write_lines(
            voc / "ImageSets/SegmentationAug/train_aug.txt",
            [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in AUG_IDS],
        )
    else:
        raise ValueError(f"unknown pre-made aug format {fmt!r}")
    return root, labels


def write_detail_json(path, train=DETAIL_TRAIN, val=DETAIL_VAL, test=DETAIL_TEST):
    """A tiny ``trainval_merged.json`` in the PASCAL in Detail API's format: a JSON object with
    the root keys the API indexes (``images``, ``annos_segmentation``, ``annos_occlusion``,
    ``annos_boundary``, ``annos_joints``, ``categories``, ``parts``, ``info``), each image
    ``{"image_id": 2008000002, "file_name": "2008_000002.jpg", "phase": "train", "width",
    "height", "date_captured"}`` (the API's ``getImgs`` keeps the images of the asked phase);
    no annotations (the labels come from ``trainval/*.mat``)."""
    images = [
        {
            "image_id": int(i.replace("_", "")),
            "file_name": f"{i}.jpg",
            "phase": phase,
            "width": W,
            "height": H,
            "date_captured": "",
        }
        for phase, ids in (("train", train), ("val", val), ("test", test))
        for i in ids
    ]
    data = {
        "info": {"description": "tiny PASCAL in Detail file for tests"},
        "images": images,
        "annos_segmentation": [],
        "annos_occlusion": [],
        "annos_boundary": [],
        "annos_joints": [],
        "categories": [],
        "parts": [],
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def write_context_release(root, detail_json=False):
    """VOC 2010 (JPEGImages, ImageSets/Main lists) + the Pascal Context release (``trainval/
    <id>.mat`` holding uint16 ``LabelMap``, ``labels.txt``) with the 59 names at shuffled ids,
    one written with a space, and three other classes; with ``detail_json`` also the Detail API
    file ``trainval_merged.json`` (:func:`write_detail_json`). Returns ``(root, {id: name},
    maps)``."""
    from seethroughnet.data.datasets.pascal_context import CONTEXT59_CLASSES

    ctx = root / "VOCdevkit/VOC2010"
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(1, 63)) + 1  # 2..63, shuffled
    names = [*CONTEXT59_CLASSES, "accordion", "air conditioner", "zebra"]
    labels = {int(i): n for i, n in zip(ids, names)}
    labels[int(ids[CONTEXT59_CLASSES.index("pottedplant")])] = "potted plant"
    (ctx / "labels.txt").parent.mkdir(parents=True)
    with open(ctx / "labels.txt", "w") as f:
        f.write("".join(f"{i}: {labels[i]}\n" for i in sorted(labels)))
    write_lines(ctx / "ImageSets/Main/train.txt", CTX_TRAIN)
    write_lines(ctx / "ImageSets/Main/val.txt", CTX_VAL)
    maps = {}
    for i in CTX_TRAIN + CTX_VAL:
        write_jpg(ctx / f"JPEGImages/{i}.jpg")
        maps[i] = rng.choice([0, *labels], (H, W)).astype(np.uint16)
        savemat(ctx / f"trainval/{i}.mat", {"LabelMap": maps[i]})
    if detail_json:
        write_detail_json(ctx / "trainval_merged.json")
    return root, labels, maps


def write_nyu_release(root):
    """``nyu_depth_v2_labeled.mat`` as MATLAB v7.3 writes it (HDF5 with a 512-byte user block;
    ``images`` N x 3 x W x H uint8, ``labels`` N x W x H uint16 from MATLAB's H x W x 3 x N and
    H x W x N), ``splits.mat`` (1-based column vectors) and ``classMapping40.mat`` (``mapClass``
    1 x 894); returns ``(root, images N x H x W x 3, labels N x H x W)`` in reading order."""
    import h5py

    nyu = root / "nyuv2"
    nyu.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_FRAMES, H, W, 3)).astype(np.uint8)
    k, r, c, rgb = PIXEL
    images[k - 1, r, c] = rgb
    labels = rng.integers(0, 895, (N_FRAMES, H, W)).astype(np.uint16)
    labels[:, 0, 0], labels[:, 0, 1] = 0, 894
    with h5py.File(nyu / "nyu_depth_v2_labeled.mat", "w", userblock_size=512) as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # N x H x W x 3 -> N x 3 x W x H
        f["labels"] = labels.transpose(0, 2, 1)  # N x H x W -> N x W x H
        f["depths"] = np.zeros((N_FRAMES, W, H), np.float32)
    sio.savemat(
        nyu / "splits.mat",
        {
            "trainNdxs": np.array(TRAIN_FRAMES, float)[:, None],
            "testNdxs": np.array(TEST_FRAMES, float)[:, None],
        },
    )
    sio.savemat(nyu / "classMapping40.mat", {"mapClass": (np.arange(894) % 40 + 1)[None]})
    return root, images, labels


def fake_mapillary_label(seed: int, h: int = 32, w: int = 64):
    import numpy as np

    rng = np.random.default_rng(seed)
    a = np.full((h, w), 27, np.uint8)  # nature--sky
    a[h // 2 :] = 13  # construction--flat--road
    a[h // 2 :, : w // 4] = 15  # construction--flat--sidewalk
    a[3 * h // 4, w // 4 :] = 24  # marking--general
    a[h // 2 : 3 * h // 4, w // 2 : w // 2 + 8] = 55  # object--vehicle--car
    a[2:5, rng.integers(0, w - 3) :][:, :3] = 0  # animal--bird
    a[rng.integers(0, h)] = 65  # void--unlabeled
    return a


def write_fake_mapillary(root, n: int = 2, layout: str = "v1.1"):
    """A tiny Mapillary Vistas v1.2 folder at ``root`` (config file with the 66 v1.2 labels, ``n``
    JPEG images and native label PNGs of :func:`fake_mapillary_label` per split); ``layout="v1.2"``
    writes ``config_v1.2.json`` and ``<split>/v1.2/labels`` (palette PNGs, as the real ones).
    Returns ``root``."""
    import json

    from seethroughnet.data.datasets.mapillary_vistas import MAPILLARY_V12_LABELS

    labels = [
        {
            "name": name,
            "readable": name.split("--")[-1].replace("-", " ").title(),
            "color": [(7 * i) % 256, (31 * i) % 256, (97 * i) % 256],
            "instances": name.startswith(("human", "object--vehicle")),
            "evaluate": name != "void--unlabeled",
        }
        for i, name in enumerate(MAPILLARY_V12_LABELS)
    ]
    root.mkdir(parents=True, exist_ok=True)
    config = "config_v1.2.json" if layout == "v1.2" else "config.json"
    (root / config).write_text(json.dumps({"labels": labels}))
    label_dir = "v1.2/labels" if layout == "v1.2" else "labels"
    for s, split in enumerate(("training", "validation")):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / label_dir).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            seed = 10 * s + i
            stem = f"img{seed:04d}"
            rgb = np.random.default_rng(seed).integers(0, 255, (32, 64, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(root / split / "images" / f"{stem}.jpg")
            lab = Image.fromarray(fake_mapillary_label(seed))
            if layout == "v1.2":  # palette PNGs, the colours of the config file
                lab = lab.convert("P")
                lab.putpalette([c for entry in labels for c in entry["color"]])
            lab.save(root / split / label_dir / f"{stem}.png")
    return root
