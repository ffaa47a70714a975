"""Write a file so that it appears whole or not at all."""

import json
import os

# defined beside the models, which import only torch, numpy and themselves (seethroughnet/nn/)
from ..nn.atomic import atomic_path

__all__ = ["atomic_path", "write_text_atomic", "write_json_atomic", "check_writable_dir"]


def write_text_atomic(path, text: str) -> str:
    """Write ``text`` to ``path`` through :func:`atomic_path` (folders created); returns
    ``path``."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return os.fspath(path)


def write_json_atomic(path, obj, **dump_kwargs) -> str:
    """``json.dump(obj, **dump_kwargs)`` to ``path`` through :func:`atomic_path`; returns
    ``path``."""
    return write_text_atomic(path, json.dumps(obj, **dump_kwargs))


def check_writable_dir(path, what: str, fix: str) -> None:
    """Create the folder ``path`` if needed and check that a file can be written in it; otherwise a
    ``PermissionError`` "``what`` ``path`` is not a writable folder (<reason>): ``fix``"."""
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise PermissionError(
            f"{what} {path} is not a writable folder ({e.strerror}): {fix}"
        ) from None
