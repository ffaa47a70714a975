#!/usr/bin/env python
"""Load registered datasets with full validation and print what they hold.

    python tools/check_dataset.py cityscapes_fine_sem_seg_train cityscapes_fine_sem_seg_val
    python tools/check_dataset.py 'camvid_*'            # shell-style patterns over the catalog
    python tools/check_dataset.py camvid_val --mode header --no-hist
    python tools/check_dataset.py --list

For each dataset: the number of images, the validation time, and (semantic datasets) the
class pixel histogram over its label files, or (instance datasets) instances per class.
A dataset that fails validation prints the DatasetError message; the exit status is 1.
The full check's per-file results are cached (see seethroughnet/data/datasets/validation.py),
so a second run over an unchanged dataset decodes nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from collections import Counter


def _parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("names", nargs="*", help="registered dataset names or shell patterns")
    p.add_argument(
        "--mode",
        choices=["header", "full"],
        default="full",
        help="validation depth (default: full)",
    )
    p.add_argument("--no-hist", action="store_true", help="skip the class histogram")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--list", action="store_true", help="list the registered dataset names and exit")
    return p.parse_args(argv)


def _semantic_histogram(name, dicts, meta, progress):
    from seethroughnet.data.datasets.validation import label_histograms

    root = meta.get("dataset_root") or os.path.commonpath(
        [os.path.abspath(d["sem_seg_file_name"]) for d in dicts]
    )
    hists = label_histograms([d["sem_seg_file_name"] for d in dicts], root=root, progress=progress)
    total = Counter()
    for h in hists.values():
        total.update(h)
    classes = meta.get("stuff_classes") or []
    ignore = meta.get("ignore_label", 255)
    n = sum(total.values()) or 1
    n_valid = sum(c for v, c in total.items() if v != ignore)
    if n_valid == 0:
        print(
            f"  {len(hists)} label files, every pixel is ignore_label {ignore} (e.g. a test split "
            "without labels)"
        )
        return
    print(f"  class pixel histogram ({len(hists)} label files, {n} pixels):")
    print(f"    {'id':>4}  {'class':<16} {'pixels':>14} {'% all':>7} {'% valid':>8}  images")
    images_with = Counter()
    for h in hists.values():
        images_with.update(h.keys())
    for v in range(len(classes)):
        c = total.get(v, 0)
        print(
            f"    {v:>4}  {classes[v]:<16} {c:>14} {100 * c / n:>6.2f}% "
            f"{100 * c / n_valid:>7.2f}%  {images_with.get(v, 0)}"
        )
    for v in sorted(k for k in total if not (0 <= k < len(classes))):
        label = "(ignore)" if v == ignore else "(not a class!)"
        c = total[v]
        print(
            f"    {v:>4}  {label:<16} {c:>14} {100 * c / n:>6.2f}% {'':>8}  {images_with.get(v, 0)}"
        )
    absent = [classes[v] for v in range(len(classes)) if total.get(v, 0) == 0]
    if absent:
        print(f"  classes with no pixels: {', '.join(absent)}")


def _instance_histogram(dicts, meta):
    classes = meta.get("thing_classes") or []
    counts = Counter(a["category_id"] for d in dicts for a in d.get("annotations", []))
    print(f"  instances per class ({sum(counts.values())} in all):")
    for i, c in enumerate(classes):
        print(f"    {i:>4}  {c:<16} {counts.get(i, 0):>8}")


def main(argv=None) -> int:
    args = _parse(argv)
    os.environ["SEETHROUGHNET_VALIDATE"] = args.mode
    os.environ["SEETHROUGHNET_VALIDATE_PROGRESS"] = "0" if args.no_progress else "1"

    from detectron2.data import DatasetCatalog, MetadataCatalog

    import seethroughnet.data.datasets  # noqa: F401  (registers the project's datasets)
    from seethroughnet.data.datasets import DatasetError

    registered = DatasetCatalog.list()
    if args.list or not args.names:
        print("\n".join(sorted(registered)))
        return 0
    names = []
    for pat in args.names:
        hits = sorted(fnmatch.filter(registered, pat)) if any(ch in pat for ch in "*?[") else [pat]
        if not hits or (hits == [pat] and pat not in registered):
            print(f"error: no registered dataset matches {pat!r} (see --list)", file=sys.stderr)
            return 2
        names += [h for h in hits if h not in names]

    failed = []
    summary = []
    for name in names:
        meta = MetadataCatalog.get(name)
        print(f"== {name}")
        t0 = time.perf_counter()
        try:
            dicts = DatasetCatalog.get(name)
        except DatasetError as e:
            print(f"  INVALID: {e}")
            failed.append(name)
            summary.append((name, "INVALID", time.perf_counter() - t0))
            continue
        except Exception as e:  # a loader outside this project (e.g. detectron2's panoptic one)
            print(f"  FAILED ({type(e).__name__}): {e}")
            failed.append(name)
            summary.append((name, "FAILED", time.perf_counter() - t0))
            continue
        dt = time.perf_counter() - t0
        print(f"  {len(dicts)} images, loaded and validated ({args.mode}) in {dt:.1f}s")
        summary.append((name, len(dicts), dt))
        if args.no_hist or not dicts:
            continue
        try:
            if "sem_seg_file_name" in dicts[0]:
                _semantic_histogram(name, dicts, meta, progress=not args.no_progress)
            elif "annotations" in dicts[0]:
                _instance_histogram(dicts, meta)
        except DatasetError as e:
            print(f"  INVALID: {e}")
            failed.append(name)

    print("== summary")
    for name, n, dt in summary:
        print(f"  {name:<36} {n!s:>8} {'images' if isinstance(n, int) else '':<6} {dt:6.1f}s")
    if failed:
        print(f"{len(failed)} dataset(s) failed validation: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
