"""Fixtures of the safe-loading tests: ``evil``, files whose parsing or unpickling would run a
payload (it creates ``evil.marker``), with the checks that a refusal names the file and the
opt-in."""

import os
import pickle
import shlex
from types import SimpleNamespace

import pytest
import torch


class Payload:
    """Pickles as ``os.system("touch MARKER")``: unpickling it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for the modules of this folder (they build several small models)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def linear_state():
    return {"weight": torch.arange(4.0).reshape(2, 2), "bias": torch.tensor([1.0, -1.0])}


def refused_config(msg, path, line=2):
    """A refusal of a YAML file with a Python tag names the file, the tag, its line, the opt-in."""
    assert (
        str(path) in msg and "!!python/object/apply:os.system" in msg and f"line {line}" in msg
    ), msg
    assert "--allow-unsafe-config" in msg, msg


def refused_weights(msg, path):
    """A refusal of a weight file holding pickled code names the file, the callable, the opt-ins."""
    assert str(path) in msg and "posix.system" in msg, msg
    assert "--trust-weights-file" in msg and "MODEL.WEIGHTS_TRUSTED" in msg, msg


@pytest.fixture
def evil(tmp_path):
    """``yaml`` (a Python tag), ``top`` (a clean file whose ``_BASE_`` is ``yaml``), ``pth`` and
    ``pkl`` (a loadable ``nn.Linear(2, 2)`` checkpoint plus the payload), ``payload()`` (a fresh
    payload object), ``linear_state()``, and the checks ``refused_config`` / ``refused_weights``."""
    marker = tmp_path / "MARKER"
    ns = SimpleNamespace(
        marker=marker,
        dir=tmp_path,
        linear_state=linear_state,
        refused_config=refused_config,
        refused_weights=refused_weights,
    )
    ns.payload = lambda: Payload(marker)
    ns.yaml = tmp_path / "evil.yaml"
    ns.yaml.write_text(f'MODEL:\n  DEVICE: !!python/object/apply:os.system ["touch {marker}"]\n')
    ns.top = tmp_path / "top.yaml"
    ns.top.write_text("_BASE_: evil.yaml\nSEED: 3\n")
    ns.pth = tmp_path / "evil.pth"
    torch.save({"model": linear_state(), "iteration": 7, "payload": Payload(marker)}, ns.pth)
    ns.pkl = tmp_path / "evil.pkl"
    with open(ns.pkl, "wb") as f:
        pickle.dump(
            {
                "model": {k: v.numpy() for k, v in linear_state().items()},
                "__author__": "test",
                "payload": Payload(marker),
            },
            f,
            protocol=2,
        )
    return ns
