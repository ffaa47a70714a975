"""The command line behind ``demo/demo.py`` (detectron2's ``demo/demo.py`` shape): a trained
model (:class:`seethroughnet.predictor.Predictor`) on images, folders, glob patterns or a video.

For each image it writes ``<stem>_overlay.png`` (the classes in the dataset palette over the
image, class names written on the segments) and ``<stem>_trainIds.png`` (the class index of every
pixel; ``--label-ids``: Cityscapes ``<stem>_labelIds.png``, the benchmark's ids). A video gives
``<stem>_overlay.mp4`` (or the ``--output`` file, ``.mp4`` / ``.avi``) and a folder
``<stem>_trainIds/`` with one ``frame_NNNNNN.png`` per frame. Every file is written to a temporary
name and renamed when complete (the video's label folder likewise), so an interrupted run leaves
no half-written output. A progress bar shows images per second; the summary line gives the
frames per second of the whole loop (read, predict, draw, write).

Bad input (an input or pattern that matches nothing, a video OpenCV cannot open, a missing
weights file, an image that cannot be decoded, ...) ends with one ``error:`` line naming it and
exit status 2, before any output is written where it can be checked first. Grayscale and 16-bit
images are converted (channel repeated; ``round(v / 257)``) with a warning.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

from .commands import _cli, _safety, _safety_args

__all__ = ["main", "VIDEO_EXTENSIONS"]

IMAGE_OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_EXTENSIONS = {".mp4": "mp4v", ".avi": "MJPG"}


def _parser():
    ap = argparse.ArgumentParser(
        prog="demo/demo.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config-file", required=True, metavar="YAML", help="the model's config")
    ap.add_argument(
        "--weights",
        default=None,
        metavar="PTH",
        help="checkpoint (default: MODEL.WEIGHTS of the config; --weights '' for random init)",
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="image files, folders (their image files, not recursive) or glob patterns "
        "(quoted: 'frames/*.jpg')",
    )
    src.add_argument("--video-input", metavar="VIDEO", help="a video file OpenCV can read")
    ap.add_argument(
        "--output",
        required=True,
        help="a folder; or, for one --input image, a .png/.jpg overlay path (labels beside it); "
        "for --video-input, a .mp4/.avi path",
    )
    ap.add_argument(
        "--label-ids",
        action="store_true",
        help="write Cityscapes labelIds (<stem>_labelIds.png) instead of trainIds",
    )
    ap.add_argument("--no-labels", action="store_true", help="write the overlays only")
    ap.add_argument("--alpha", type=float, default=0.6, help="opacity of the class colours")
    ap.add_argument(
        "--plain-overlay",
        action="store_true",
        help="colours only, no class names (faster; useful for long videos)",
    )
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: MODEL.DEVICE)")
    _safety_args(ap)
    ap.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        help="KEY VALUE config overrides, last (e.g. TEST.SEE_THROUGH.FLIP True)",
    )
    return ap


def _stem(path):
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def _label_suffix(a):
    return "_labelIds" if a.label_ids else "_trainIds"


def _image_destinations(a, paths):
    """``[(input, overlay path, label path or None)]``, checked before anything runs."""
    ext = os.path.splitext(a.output)[1].lower()
    if ext in IMAGE_OUTPUT_EXTENSIONS:
        if len(paths) != 1:
            raise ValueError(
                f"--output {a.output} is a file name but --input gives {len(paths)} images; "
                "give a folder"
            )
        base = os.path.splitext(a.output)[0]
        label = None if a.no_labels else base + _label_suffix(a) + ".png"
        return [(paths[0], a.output, label)]
    if os.path.exists(a.output) and not os.path.isdir(a.output):
        raise ValueError(f"--output {a.output} is an existing file; give a folder")
    seen, out = {}, []
    for p in paths:
        stem = _stem(p)
        if stem in seen and os.path.abspath(seen[stem]) != os.path.abspath(p):
            raise ValueError(
                f"inputs {seen[stem]} and {p} have the same name {stem!r}, so their outputs "
                "would overwrite each other; run them into separate --output folders"
            )
        if stem in seen:
            continue
        seen[stem] = p
        label = None if a.no_labels else os.path.join(a.output, stem + _label_suffix(a) + ".png")
        out.append((p, os.path.join(a.output, stem + "_overlay.png"), label))
    return out


def _check_decodable(paths):
    """Each file's header names an image format PIL reads (cheap: the pixels are not decoded),
    so that a stray non-image fails before the model loads and before anything is written."""
    from PIL import Image, UnidentifiedImageError

    from seethroughnet.predictor import InputError

    for path in paths:
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(
                f"{path} cannot be decoded as an image ({type(e).__name__}: {e}); give PNG or "
                "JPEG files, or remove it from the --input list / folder"
            ) from None


def _save_png(array, path):
    from PIL import Image

    from seethroughnet.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def _save_overlay(array, path):
    from .figures import save_image

    if path.lower().endswith(".png"):
        save_image(array, path)
        return
    from PIL import Image

    from seethroughnet.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, quality=95)


def _open_video(path):
    import cv2

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--video-input {path} does not exist")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise ValueError(
            f"OpenCV cannot open the video {path} (not a video, or a codec this OpenCV build "
            "lacks); convert it, e.g. ffmpeg -i IN -c:v mjpeg -q:v 2 OUT.avi, or extract its "
            "frames and pass them with --input"
        )
    return cap


def _video_destination(a):
    ext = os.path.splitext(a.output)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        video = a.output
    elif ext:
        raise ValueError(
            f"--output {a.output}: video outputs are {', '.join(VIDEO_EXTENSIONS)}; give such "
            "a file name or a folder"
        )
    else:
        video = os.path.join(a.output, _stem(a.video_input) + "_overlay.mp4")
    labels = None
    if not a.no_labels:
        if ext:
            labels = os.path.splitext(a.output)[0] + _label_suffix(a)
        else:
            labels = os.path.join(a.output, _stem(a.video_input) + _label_suffix(a))
    return video, labels


def _load(a):
    from seethroughnet.predictor import Predictor

    if a.weights and "://" not in a.weights and not os.path.isfile(a.weights):
        raise FileNotFoundError(
            f"--weights {a.weights} does not exist: give the path of a checkpoint (a training "
            "run's model_final.pth, or one converted by tools/convert_weights.py), or "
            "--weights '' for a random-init model"
        )
    try:
        predictor = Predictor(a.config_file, a.weights, a.opts, a.device, **_safety(a))
        if not (a.weights or (a.weights is None and predictor.cfg.MODEL.WEIGHTS)):
            print(
                "note: no weights (random init): the output shows an untrained model",
                file=sys.stderr,
            )
        return predictor
    except FileNotFoundError as e:
        if a.weights is None and "checkpoint" in str(e):
            raise FileNotFoundError(
                f"{e} (MODEL.WEIGHTS of {a.config_file}): pass --weights PATH, or --weights '' "
                "for a random-init model"
            ) from None
        raise


def _report(n, seconds, what):
    fps = n / seconds if seconds > 0 else float("inf")
    print(f"{n} {what} in {seconds:.2f} s: {fps:.2f} frames/s (read, predict, draw, write)")


def _run_images(a, predictor, jobs):
    from tqdm import tqdm

    labels = "cityscapes" if a.label_ids else "train"
    if a.label_ids:
        _check_label_ids(predictor)
    t0 = time.perf_counter()
    for path, overlay_path, label_path in tqdm(jobs, desc="demo", unit="img", file=sys.stderr):
        pred = predictor(path)
        _save_overlay(pred.overlay(alpha=a.alpha, names=not a.plain_overlay), overlay_path)
        if label_path:
            _save_png(pred.label_map(labels), label_path)
    _report(len(jobs), time.perf_counter() - t0, "images")
    out = a.output if len(jobs) > 1 or os.path.isdir(a.output) else jobs[0][1]
    print(f"wrote {out}")


def _check_label_ids(predictor):
    from seethroughnet.data.datasets import CITYSCAPES_STUFF_CLASSES

    if predictor.class_names != list(CITYSCAPES_STUFF_CLASSES):
        raise ValueError(
            f"--label-ids needs a 19-class Cityscapes model; this config has "
            f"{len(predictor.class_names)} classes ({', '.join(predictor.class_names[:3])}, ...): "
            "drop --label-ids to write trainIds"
        )


def _run_video(a, predictor, cap, video_path, label_dir):
    import cv2
    from tqdm import tqdm

    from seethroughnet.utils.atomic import atomic_path

    labels = "cityscapes" if a.label_ids else "train"
    if a.label_ids:
        _check_label_ids(predictor)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fourcc = cv2.VideoWriter_fourcc(*VIDEO_EXTENSIONS[os.path.splitext(video_path)[1].lower()])
    tmp_labels = None
    if label_dir:
        parent = os.path.dirname(os.path.abspath(label_dir))
        os.makedirs(parent, exist_ok=True)
        tmp_labels = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(label_dir)}.part")
    n, t0 = 0, time.perf_counter()
    try:
        with atomic_path(video_path) as tmp_video:
            writer = None
            try:
                with tqdm(total=total, desc="demo", unit="frame", file=sys.stderr) as bar:
                    while True:
                        ok, frame = cap.read()
                        if not ok:
                            break
                        pred = predictor(frame, format="BGR")
                        out = pred.overlay(alpha=a.alpha, names=not a.plain_overlay)
                        if writer is None:
                            h, w = out.shape[:2]
                            writer = cv2.VideoWriter(tmp_video, fourcc, fps, (w, h))
                            if not writer.isOpened():
                                raise ValueError(
                                    f"OpenCV cannot write {video_path} with codec "
                                    f"{VIDEO_EXTENSIONS[os.path.splitext(video_path)[1].lower()]}"
                                    "; try the other extension (.mp4 or .avi)"
                                )
                        writer.write(np.ascontiguousarray(out[:, :, ::-1]))
                        if tmp_labels:
                            _save_png(
                                pred.label_map(labels),
                                os.path.join(tmp_labels, f"frame_{n:06d}.png"),
                            )
                        n += 1
                        bar.update(1)
            finally:
                if writer is not None:
                    writer.release()
                cap.release()
            if n == 0:
                raise ValueError(
                    f"OpenCV read no frame from the video {a.video_input}; check the file, or "
                    "convert it (ffmpeg -i IN -c:v mjpeg -q:v 2 OUT.avi)"
                )
        if tmp_labels:
            os.chmod(tmp_labels, 0o777 & ~_umask())
            if os.path.isdir(label_dir):
                shutil.rmtree(label_dir)
            os.replace(tmp_labels, label_dir)
            tmp_labels = None
    finally:
        if tmp_labels and os.path.isdir(tmp_labels):
            shutil.rmtree(tmp_labels)
    _report(n, time.perf_counter() - t0, "frames")
    print(f"wrote {video_path}" + (f" and {label_dir}/" if label_dir else ""))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@_cli
def main(argv=None) -> int:
    """Segment images, folders, glob patterns or a video with a trained model."""
    a = _parser().parse_args(argv)
    from seethroughnet.predictor import list_images

    if not 0.0 <= a.alpha <= 1.0:
        raise ValueError(f"--alpha {a.alpha} is outside [0, 1]")
    if a.video_input is not None:
        video_path, label_dir = _video_destination(a)
        cap = _open_video(a.video_input)  # before the (slow) model load
        try:
            predictor = _load(a)
        except BaseException:
            cap.release()
            raise
        with warnings.catch_warnings():
            warnings.simplefilter("once")
            _run_video(a, predictor, cap, video_path, label_dir)
        return 0
    jobs = _image_destinations(a, list_images(a.input))
    _check_decodable([path for path, _, _ in jobs])
    predictor = _load(a)
    _run_images(a, predictor, jobs)
    return 0
