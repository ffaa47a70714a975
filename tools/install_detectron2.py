#!/usr/bin/env python
"""Install detectron2 into the current Python environment, or leave a working one alone.

There is no detectron2 distribution for CPython 3.11 on the package registry, and upstream
builds from its GitHub sources. This script installs detectron2 v0.6's Python sources from
the registry's ``pb1-detectron2==0.6`` sdist (file-for-file identical to upstream's v0.6 tag,
verified here by its sha256), with the reviewed patch set ``tools/detectron2/*.patch`` that
fixes the places where v0.6 breaks on current torch / numpy / Pillow / setuptools:

* the module-level ``from detectron2 import _C`` imports become lazy: deformable conv,
  rotated boxes and the fast COCO evaluator raise a clear error only when called;
* removed numpy aliases (``np.int``, ``np.float``, ``np.bool``, ``np.str``);
* ``PIL.Image.LINEAR`` (removed in Pillow 10) becomes ``Image.BILINEAR``;
* ``pkg_resources`` (removed in setuptools 81) in ``model_zoo``;
* FCOS / RetinaNet: the norm-name probe ``get_norm(norm, 1)`` fails for GroupNorm;
* multi-process runs without a GPU use gloo instead of asserting CUDA and NCCL.

As upstream's setup.py does, ``detectron2.projects.{deeplab,point_rend,panoptic_deeplab}``
are installed from the sdist's ``projects/`` folder. The result is a real installed distribution
(``pip show detectron2`` works) named ``detectron2`` with version ``0.6+py311.patched``.

If ``detectron2`` is already importable *with* its compiled ops (a user who built upstream
from source), nothing is touched. Re-running after a successful install is a no-op.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
INSTALLED_VERSION = "0.6+py311.patched"
INSTALLED_DESCRIPTION = (
    "detectron2 v0.6 Python sources (from the pb1-detectron2 sdist) patched for Python 3.11, "
    "torch 2.x, numpy 2, Pillow 10+"
)
PROJECTS = {
    "point_rend": "PointRend/point_rend",
    "deeplab": "DeepLab/deeplab",
    "panoptic_deeplab": "Panoptic-DeepLab/panoptic_deeplab",
}
REPO = Path(__file__).resolve().parents[1]
PATCH_DIR = REPO / "tools" / "detectron2"

# detectron2 v0.6's own runtime requirements (setup.py), minus the formatter `black` and the
# caffe2-era `future`/`pydot`, which no code path used by this project needs.
REQUIREMENTS = [
    "Pillow>=7.1",
    "matplotlib",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
]


def log(msg):
    print(f"[install_detectron2] {msg}", flush=True)


def fail(msg):
    print(f"[install_detectron2] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def patch_digest():
    """Identifies what this script installs: its own text and the patch set."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for p in sorted(PATCH_DIR.glob("*.patch")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def existing_install():
    """Describe the detectron2 importable in a fresh interpreter, or None."""
    code = (
        "import json, detectron2, os\n"
        "info = {'version': detectron2.__version__, 'path': os.path.dirname(detectron2.__file__)}\n"
        "try:\n"
        "    from detectron2 import _C\n"
        "    info['compiled'] = True\n"
        "except ImportError:\n"
        "    info['compiled'] = False\n"
        "p = os.path.join(info['path'], 'PATCHED_BY_SEETHROUGHNET')\n"
        "info['patch'] = open(p).read().strip() if os.path.exists(p) else None\n"
        "print(json.dumps(info))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sdist_url(index_url):
    """Find the sdist's URL through the registry's simple API (PEP 691 JSON)."""
    url = index_url.rstrip("/") + f"/{SDIST_NAME}/"
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = json.load(r)
    for f in data.get("files", []):
        if f["filename"] == SDIST_FILE:
            return f["url"]
    raise RuntimeError(f"{SDIST_FILE} is not listed at {url}")


def fetch_sdist(cache_dir, index_url):
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / SDIST_FILE
    if target.exists() and sha256_of(target) == SDIST_SHA256:
        log(f"using cached {target}")
        return target
    url = sdist_url(index_url)
    log(f"downloading {url}")
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=120) as r:
            shutil.copyfileobj(r, out)
        digest = sha256_of(tmp)
        if digest != SDIST_SHA256:
            raise RuntimeError(
                f"sha256 of the downloaded {SDIST_FILE} is {digest}, expected {SDIST_SHA256}; "
                "refusing to install it"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def build_source_tree(sdist, work):
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    src = work / f"{SDIST_NAME}-{SDIST_VERSION}"
    pkg = work / "pkg"
    pkg.mkdir()
    shutil.copytree(src / "detectron2", pkg / "detectron2")
    # upstream's setup.py ships three projects inside the package (detectron2.projects.*)
    for module, folder in PROJECTS.items():
        shutil.copytree(src / "projects" / folder, pkg / "detectron2" / "projects" / module)
    shutil.copy(src / "LICENSE", pkg / "LICENSE")
    for patch in sorted(PATCH_DIR.glob("*.patch")):
        log(f"applying {patch.relative_to(REPO)}")
        r = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-i", str(patch)],
            cwd=pkg,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            fail(f"{patch} does not apply to {SDIST_FILE}:\n{r.stdout}{r.stderr}")
    (pkg / "detectron2" / "PATCHED_BY_SEETHROUGHNET").write_text(patch_digest() + "\n")
    deps = ",\n".join(f'    "{r}"' for r in REQUIREMENTS)
    (pkg / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "detectron2"
version = "{INSTALLED_VERSION}"
description = "{INSTALLED_DESCRIPTION}"
license = "Apache-2.0"
requires-python = ">=3.8"
dependencies = [
{deps}
]

[tool.setuptools.packages.find]
include = ["detectron2*"]

[tool.setuptools.package-data]
"*" = ["*.yaml", "*.py", "PATCHED_BY_SEETHROUGHNET"]
"""
    )
    # model-zoo configs are data (yaml and LazyConfig .py files), not packages
    return pkg


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sdist", help=f"a local copy of {SDIST_FILE} (its sha256 is still checked)")
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "downloads"))
    ap.add_argument(
        "--index-url", default=os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    )
    ap.add_argument(
        "--force", action="store_true", help="reinstall even if a patched install is present"
    )
    args = ap.parse_args()

    info = existing_install()
    if info and info["compiled"]:
        log(
            f"detectron2 {info['version']} with compiled ops found at {info['path']}: leaving it "
            "alone"
        )
        return
    if info and info["patch"] == patch_digest() and not args.force:
        log(
            f"patched detectron2 {info['version']} already installed at {info['path']} (patch "
            f"{info['patch']})"
        )
        return
    if info and info["patch"] is None:
        fail(
            f"a detectron2 {info['version']} without compiled ops and not installed by this script "
            f"is at {info['path']}. Uninstall it (pip uninstall detectron2) or build it with its "
            "ops, then run this again."
        )

    if args.sdist:
        sdist = Path(args.sdist)
        if not sdist.is_file():
            fail(f"--sdist {sdist} does not exist")
        digest = sha256_of(sdist)
        if digest != SDIST_SHA256:
            fail(f"sha256 of {sdist} is {digest}, expected {SDIST_SHA256}")
    else:
        try:
            sdist = fetch_sdist(Path(args.cache_dir), args.index_url)
        except Exception as e:  # network or index errors: say what to do
            fail(
                f"could not fetch {SDIST_FILE} from {args.index_url}: {e}\n"
                f"Download it by hand and pass --sdist PATH."
            )

    with tempfile.TemporaryDirectory(prefix="d2build-") as tmp:
        pkg = build_source_tree(sdist, Path(tmp))
        log(
            "pip install (no build isolation, no dependency resolution beyond detectron2's own "
            "list)"
        )
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--quiet", str(pkg)]
        )
        if r.returncode != 0:
            fail("pip install of the patched detectron2 failed (see pip's output above)")
    info = existing_install()
    if not info or info["patch"] != patch_digest():
        fail("detectron2 was installed but does not import; see the messages above")
    log(f"installed detectron2 {info['version']} at {info['path']}")


if __name__ == "__main__":
    main()
