#!/usr/bin/env python3
"""Check that the synthetic Cityscapes generator still writes byte-identical files.

Generates the same small dataset twice, once with the generator as it was at a git revision
(the single module ``seethroughnet/data/synthetic_cityscapes.py`` before it became the package
``seethroughnet.data.synthetic``, or the package itself at a later revision) and once with the
working tree, and compares the SHA-256 of every file, manifest included::

    python tools/compare_synthetic_generators.py                       # against 5257496
    python tools/compare_synthetic_generators.py --revision HEAD~3 --seed 7 --height 128 --width 256

Exit status 0 when every file is identical, 1 otherwise (the differing files are listed).
"""

import argparse
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.join(REPO, "projects", "SeeThroughNet")
OLD_MODULE = "projects/SeeThroughNet/seethroughnet/data/synthetic_cityscapes.py"
PACKAGE = "projects/SeeThroughNet/seethroughnet"


def _git(*args) -> bytes:
    return subprocess.run(["git", "-C", REPO, *args], check=True, capture_output=True).stdout


def load_generator_at(revision: str, workdir: str):
    """The generator module (or package) as it was at ``revision``, imported from ``workdir``."""
    listed = _git("ls-tree", "-r", "--name-only", revision, "--", OLD_MODULE).decode().split()
    if listed:  # the single-module generator: no relative imports, load it from its file
        path = os.path.join(workdir, "old_synthetic_cityscapes.py")
        with open(path, "wb") as f:
            f.write(_git("show", f"{revision}:{OLD_MODULE}"))
        spec = importlib.util.spec_from_file_location("old_synthetic_cityscapes", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    # the package: export the whole seethroughnet package of that revision and import it from
    # there (a fresh sys.path entry, the seethroughnet modules unloaded before and after)
    archive = _git("archive", "--format=tar", revision, PACKAGE)
    subprocess.run(["tar", "-x", "-C", workdir], input=archive, check=True)
    _forget_seethroughnet()
    sys.path.insert(0, os.path.join(workdir, "projects", "SeeThroughNet"))
    try:
        return importlib.import_module("seethroughnet.data.synthetic")
    finally:
        sys.path.pop(0)
        _forget_seethroughnet()


def _forget_seethroughnet():
    """Unload every ``seethroughnet`` module, so that the next import reads another copy."""
    for name in [m for m in sys.modules if m.split(".")[0] == "seethroughnet"]:
        del sys.modules[name]


def load_current_generator():
    """The generator of the working tree."""
    sys.path.insert(0, PROJECT)
    try:
        return importlib.import_module("seethroughnet.data.synthetic")
    finally:
        sys.path.pop(0)


def file_hashes(root: str) -> dict:
    """``{relative path: sha256}`` of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            path = os.path.join(dirpath, fn)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--revision", default="5257496", help="git revision of the reference generator")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--num-train", type=int, default=10)
    ap.add_argument("--num-val", type=int, default=3)
    ap.add_argument("--num-test", type=int, default=2)
    ap.add_argument("--test-gt", choices=("dummy", "full"), default="dummy")
    args = ap.parse_args(argv)
    params = dict(
        seed=args.seed,
        height=args.height,
        width=args.width,
        progress=False,
        test_gt=args.test_gt,
        num_images={"train": args.num_train, "val": args.num_val, "test": args.num_test},
    )
    with tempfile.TemporaryDirectory(prefix="compare-synthetic-") as tmp:
        old = load_generator_at(args.revision, tmp)
        old.generate_synthetic_cityscapes(os.path.join(tmp, "old"), **params)
        new = load_current_generator()
        new.generate_synthetic_cityscapes(os.path.join(tmp, "new"), **params)
        a, b = file_hashes(os.path.join(tmp, "old")), file_hashes(os.path.join(tmp, "new"))
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    print(
        f"{len(a)} files from {args.revision}, {len(b)} from the working tree "
        f"(seed {args.seed}, {args.height}x{args.width}, {params['num_images']}, "
        f"test_gt={args.test_gt})"
    )
    if differing:
        print(f"DIFFERENT: {len(differing)} files, e.g.\n  " + "\n  ".join(differing[:20]))
        return 1
    print("identical: every file has the same SHA-256")
    return 0


if __name__ == "__main__":
    sys.exit(main())
