"""demo/demo.py (seethroughnet.visualization.demo.main) on synthetic Cityscapes images, a folder, a
glob, grayscale / 16-bit images and a short synthetic video, with the tiny SeeThroughNet at
random weights: overlays and label PNGs of the right size, labels equal to the Predictor's
classes, nothing half-written; bad input ends with one error line and exit status 2. Seconds on
a CPU."""

import glob
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

cv2 = pytest.importorskip("cv2")

from seethroughnet.predictor import Predictor  # noqa: E402
from seethroughnet.visualization.demo import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests/configs/seethroughnet_tiny.yaml")
H, W = 64, 128  # the synthetic Cityscapes frames


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup(make_synthetic_cityscapes, tmp_path_factory):
    """``(folder of 3 synthetic val images, checkpoint, Predictor with it, scratch folder)``."""
    from seethroughnet.experiments.models import load_model

    root = make_synthetic_cityscapes(num_images={"train": 1, "val": 3, "test": 1}, register=False)
    images = sorted(glob.glob(str(root / "cityscapes/leftImg8bit/val/*/*_leftImg8bit.png")))
    assert len(images) == 3
    d = tmp_path_factory.mktemp("demo")
    folder = d / "images"
    folder.mkdir()
    for p in images:
        os.symlink(p, folder / os.path.basename(p))
    torch.manual_seed(0)
    _, model = load_model(TINY, "", (), "cpu")
    ckpt = d / "tiny.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    return folder, str(ckpt), Predictor(TINY, str(ckpt), device="cpu"), d


def _args(ckpt, *rest):
    return ["--config-file", TINY, "--weights", ckpt, "--device", "cpu", *rest]


def _png(path):
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return np.asarray(im)


def _no_partial_files(folder):
    return [p for p in Path(folder).rglob("*") if ".part" in p.name]


def test_folder_glob_and_conversions(setup, capsys):
    folder, ckpt, predictor, d = setup
    extra = d / "extra"
    extra.mkdir()
    gray = np.asarray(Image.open(sorted(folder.iterdir())[0]).convert("L"))
    Image.fromarray(gray).save(extra / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(extra / "deep.png")
    out = d / "out_images"
    pattern = str(folder / "*_leftImg8bit.png")
    with pytest.warns(UserWarning) as record:
        rc = main(_args(ckpt, "--input", pattern, str(extra), "--output", str(out)))
    assert rc == 0
    msgs = " | ".join(str(w.message) for w in record)
    assert "gray.png: grayscale" in msgs and "deep.png: 16-bit image scaled to 8 bits" in msgs
    captured = capsys.readouterr()
    assert "5 images in" in captured.out and "frames/s" in captured.out
    assert "img/s" in captured.err or "s/img" in captured.err  # tqdm's progress bar
    inputs = sorted(folder.iterdir()) + [extra / "deep.png", extra / "gray.png"]
    for p in inputs:
        stem = p.stem
        overlay = _png(out / f"{stem}_overlay.png")
        assert overlay.shape == (H, W, 3) and overlay.std() > 0
        labels = _png(out / f"{stem}_trainIds.png")
        assert labels.shape == (H, W) and labels.dtype == np.uint8
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the conversions were checked above
            np.testing.assert_array_equal(labels, predictor(str(p)).classes)
    assert len(list(out.iterdir())) == 2 * len(inputs) and not _no_partial_files(out)


def test_single_image_to_a_file_with_cityscapes_label_ids(setup):
    from seethroughnet.experiments.export import trainid_to_labelid_lut

    folder, ckpt, predictor, d = setup
    image = sorted(folder.iterdir())[1]
    dest = d / "single" / "result.png"
    assert main(_args(ckpt, "--input", str(image), "--output", str(dest), "--label-ids")) == 0
    assert _png(dest).shape == (H, W, 3)
    labels = _png(d / "single" / "result_labelIds.png")
    np.testing.assert_array_equal(labels, trainid_to_labelid_lut()[predictor(str(image)).classes])
    assert sorted(p.name for p in (d / "single").iterdir()) == ["result.png", "result_labelIds.png"]


def _write_video(path, frames, fourcc="MJPG", fps=5.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def _read_video(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def test_video_in_and_out(setup, capsys):
    folder, ckpt, predictor, d = setup
    frames = [cv2.imread(str(p)) for p in sorted(folder.iterdir())]  # BGR, 64x128
    video = d / "clip.avi"
    _write_video(video, frames)
    decoded = _read_video(video)  # what the demo reads (MJPG is lossy)
    assert len(decoded) == 3
    out = d / "out_video"
    assert main(_args(ckpt, "--video-input", str(video), "--output", str(out))) == 0
    assert "3 frames in" in capsys.readouterr().out
    written = _read_video(out / "clip_overlay.mp4")
    assert len(written) == 3 and all(f.shape == (H, W, 3) for f in written)
    label_files = sorted((out / "clip_trainIds").iterdir())
    assert [p.name for p in label_files] == [f"frame_{i:06d}.png" for i in range(3)]
    for f, p in zip(decoded, label_files):
        np.testing.assert_array_equal(_png(p), predictor(f, format="BGR").classes)
    assert not _no_partial_files(out)
    # an .avi output file, colours only, no labels
    dest = d / "out_video2" / "seg.avi"
    args = _args(ckpt, "--video-input", str(video), "--output", str(dest))
    assert main(args + ["--plain-overlay", "--no-labels"]) == 0
    assert len(_read_video(dest)) == 3 and [p.name for p in dest.parent.iterdir()] == ["seg.avi"]


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_input_one_message_exit_2_nothing_written(setup, capsys):
    folder, ckpt, _, d = setup
    out = d / "bad_out"
    image = str(sorted(folder.iterdir())[0])

    def run(*rest):
        return main(_args(ckpt, *rest, "--output", str(out)))

    assert run("--input", str(d / "nowhere" / "*.png")) == 2
    assert "nowhere/*.png matches no file" in _error(capsys)
    assert run("--input", str(d / "missing.png")) == 2
    assert "missing.png does not exist" in _error(capsys)
    assert run("--video-input", str(d / "missing.mp4")) == 2
    assert "--video-input" in _error(capsys)
    (d / "not_a_video.mp4").write_bytes(b"\x00" * 64)
    assert run("--video-input", str(d / "not_a_video.mp4")) == 2
    msg = _error(capsys)
    assert "OpenCV cannot open the video" in msg and "not_a_video.mp4" in msg and "ffmpeg" in msg
    rc = main(
        ["--config-file", TINY, "--weights", str(d / "gone.pth"), "--input", image]
        + ["--output", str(out)]
    )
    msg = _error(capsys)
    assert rc == 2 and "--weights" in msg and "gone.pth does not exist" in msg and "''" in msg
    assert main(_args(ckpt, "--input", str(folder), "--output", str(d / "one.png"))) == 2
    assert "give a folder" in _error(capsys)
    broken = d / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not an image")
    assert run("--input", str(broken / "x.png")) == 2
    assert "x.png cannot be decoded as an image" in _error(capsys)
    assert not out.exists() or not any(out.iterdir())
    assert not (d / "one.png").exists()
