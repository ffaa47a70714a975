"""The on-disk cache of the full validation: per-file results (label histograms, verified
images) keyed by (path, size, mtime), one small JSON file per dataset root.

The cache folder is ``$SEETHROUGHNET_CACHE_DIR`` (default
``$XDG_CACHE_HOME/seethroughnet/dataset_validation``, i.e.
``~/.cache/seethroughnet/dataset_validation``; ``off`` disables it).  Each cache file is written
through :func:`seethroughnet.utils.atomic.atomic_path`, so concurrent loaders (one per DDP rank)
never see a half-written cache.  Dataset roots are never written to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from typing import Dict, Optional

from ...utils.atomic import atomic_path

__all__ = ["CACHE_ENV", "cache_dir", "ValidationCache"]

logger = logging.getLogger(__name__)

CACHE_ENV = "SEETHROUGHNET_CACHE_DIR"
_CACHE_VERSION = 1


def cache_dir() -> Optional[str]:
    """Folder of the validation cache, or None when caching is disabled."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        if env.strip().lower() in ("", "0", "off", "none", "false", "no"):
            return None
        return os.path.expanduser(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "seethroughnet", "dataset_validation")


class ValidationCache:
    """Per-file results of the full check for one dataset root, keyed by (path, size, mtime)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        d = cache_dir()
        self.path = None
        if d is not None:
            digest = hashlib.sha1(self.root.encode("utf-8")).hexdigest()[:16]
            self.path = os.path.join(d, f"{os.path.basename(self.root) or 'root'}-{digest}.json")
        self.files: Dict[str, dict] = self._read() if self.path else {}
        self._new: Dict[str, dict] = {}
        self._lock = threading.Lock()

    def _read(self) -> Dict[str, dict]:
        try:
            with open(self.path, "r") as f:
                data = json.load(f)
            if data.get("version") == _CACHE_VERSION and data.get("root") == self.root:
                return dict(data.get("files", {}))
        except (OSError, ValueError, AttributeError):
            pass
        return {}

    def _key(self, path: str) -> str:
        p = os.path.abspath(path)
        rel = os.path.relpath(p, self.root)
        return p if rel.startswith("..") else rel

    def get(self, path: str, st: os.stat_result, field: str):
        e = self.files.get(self._key(path))
        if e and e.get("size") == st.st_size and e.get("mtime_ns") == st.st_mtime_ns and field in e:
            return e[field]
        return None

    def put(self, path: str, st: os.stat_result, **fields) -> None:
        key = self._key(path)
        with self._lock:
            e = self.files.get(key)
            if not e or e.get("size") != st.st_size or e.get("mtime_ns") != st.st_mtime_ns:
                e = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            e = dict(e, **fields)
            self.files[key] = e
            self._new[key] = e

    def save(self) -> None:
        if not self.path or not self._new:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            merged = self._read()  # keep what other processes added meanwhile
            merged.update(self._new)
            with atomic_path(self.path) as tmp:
                with open(tmp, "w") as f:
                    json.dump({"version": _CACHE_VERSION, "root": self.root, "files": merged}, f)
            self._new = {}
        except OSError as e:
            logger.warning("Could not write the dataset validation cache %s: %s", self.path, e)
