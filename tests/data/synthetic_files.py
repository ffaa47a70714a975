"""Reading a generated folder back: the helper of the synthetic-generator tests
(tests/data/test_synthetic_cityscapes.py, tests/data/test_synthetic_writer.py)."""

import os


def all_files(root):
    """``{path relative to root: path}`` of every file below ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = p
    return out


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
