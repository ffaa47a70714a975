"""Write a file so that it appears whole or not at all."""

import contextlib
import json
import os
import tempfile

__all__ = ["atomic_path", "write_text_atomic", "write_json_atomic", "check_writable_dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer the format
    from it work); on success it gets ordinary file permissions and replaces ``path`` in one
    rename, on error it is removed and ``path`` is left as it was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    suffix = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=f".part{suffix}")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
