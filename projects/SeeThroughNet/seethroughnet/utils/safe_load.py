"""Reading config, weight and result files without running code from them.

Every YAML config, checkpoint and weight file the project opens goes through this module:

* YAML configs (and every ``_BASE_`` file they pull in) are read by fvcore's own safe load
  (``yaml.safe_load``); other YAML files (grids, cost files) by :func:`load_yaml_file`. A file
  holding a tag that needs Python objects (``!!python/object/apply:...``) is refused by
  :class:`UnsafeConfigError`, naming the file, the tag and its line, unless the caller opted in
  (``--allow-unsafe-config``).
* ``.pth`` / ``.pt`` (and any other non-``.pkl``) files load with ``torch.load(weights_only=True)``
  (tensors, containers, numbers, strings, and the numpy arrays of :data:`NUMPY_GLOBALS`).
* ``.pkl`` files (Detectron / detectron2 model-zoo weights: dicts of numpy arrays) load through
  :class:`RestrictedUnpickler`, which builds only dicts, lists, tuples, sets, strings, bytes,
  numbers and numpy arrays / scalars.
* Anything else is refused by :class:`UntrustedWeightsError`, naming the file, what it holds and
  the opt-in for trusted legacy files (``--trust-weights-file`` or ``MODEL.WEIGHTS_TRUSTED True``
  on the command line).

A config file cannot opt in on its own behalf: :func:`merge_config_file` refuses a YAML file
(or one of its ``_BASE_`` files) that sets ``MODEL.WEIGHTS_TRUSTED: True``.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from typing import Any, Callable, Dict, Optional, Tuple

import yaml

from ..nn import weights as _nn_weights

__all__ = [
    "ALLOW_UNSAFE_CONFIG_FLAG",
    "TRUST_WEIGHTS_FLAG",
    "TRUST_WEIGHTS_KEY",
    "NUMPY_GLOBALS",
    "ConfigFileError",
    "UnsafeFileError",
    "UnsafeConfigError",
    "UntrustedWeightsError",
    "RestrictedUnpickler",
    "add_safety_arguments",
    "apply_safety_arguments",
    "find_unsafe_yaml_tag",
    "load_yaml_file",
    "merge_config_file",
    "load_pickle_file",
    "load_torch_file",
    "load_weights_file",
]

logger = logging.getLogger(__name__)

ALLOW_UNSAFE_CONFIG_FLAG = "--allow-unsafe-config"
TRUST_WEIGHTS_FLAG = "--trust-weights-file"
TRUST_WEIGHTS_KEY = "MODEL.WEIGHTS_TRUSTED"
TRUST_WEIGHTS_HINT = (
    f"If you trust this file and where it came from, pass {TRUST_WEIGHTS_FLAG} (or "
    f"{TRUST_WEIGHTS_KEY} True on the command line)"
)
BASE_KEY = "_BASE_"  # detectron2 / fvcore: the file this one is merged onto


class ConfigFileError(ValueError):
    """A config file that is not a YAML mapping of config keys (a LazyConfig ``.py`` or YAML, an
    empty file, a list, a scalar); the message names the file and what is expected."""


class UnsafeFileError(ValueError):
    """A file would need code execution to be read; the message names the file and the opt-in."""


class UnsafeConfigError(UnsafeFileError):
    pass


class UntrustedWeightsError(UnsafeFileError, _nn_weights.UntrustedWeightsError):
    """A refused weight file; a subclass of the plain loader's error in
    :mod:`seethroughnet.nn.weights` (itself a ``pickle.UnpicklingError``)."""


# ------------------------------------------------------------------------------------------ YAML
_YAML_PREFIX = "tag:yaml.org,2002:"
# what SafeLoader constructs, plus the merge ("<<") and value ("=") keys it resolves itself
_SAFE_TAGS = frozenset(t for t in yaml.SafeLoader.yaml_constructors if t is not None) | {
    _YAML_PREFIX + "merge",
    _YAML_PREFIX + "value",
}


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_PREFIX) :] if tag.startswith(_YAML_PREFIX) else tag


def find_unsafe_yaml_tag(text: str, name: str = "<string>") -> Optional[Tuple[str, int]]:
    """``(tag, line)`` (1-based) of the first node whose tag PyYAML's ``SafeLoader`` cannot
    construct (``!!python/...`` and any other custom tag), or ``None``. Only composes the node
    graph: nothing is constructed."""
    stream = io.StringIO(text)
    stream.name = name
    loader = yaml.SafeLoader(stream)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    seen = set()
    todo = [root] if root is not None else []
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in _SAFE_TAGS:
            return _short_tag(node.tag), node.start_mark.line + 1
        if isinstance(node, yaml.SequenceNode):
            todo.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            for k, v in reversed(node.value):
                todo.extend((v, k))
    return None


def _read_text(path: str) -> str:
    from detectron2.utils.file_io import PathManager  # as detectron2's CfgNode opens configs

    with PathManager.open(path, "r") as f:
        return f.read()


def load_yaml_file(
    path: str, *, allow_unsafe: bool = False, what: str = "config file", via: str = ""
) -> Any:
    """The content of a YAML file, parsed with ``yaml.SafeLoader``. A tag that needs Python
    objects raises :class:`UnsafeConfigError` (file, tag, line, ``--allow-unsafe-config``) unless
    ``allow_unsafe``, in which case the file is read with ``yaml.unsafe_load`` and a warning."""
    text = _read_text(path)
    try:
        bad = find_unsafe_yaml_tag(text, path)
    except yaml.YAMLError as e:
        raise ValueError(f"{what} {path} is not valid YAML: {e}") from None
    if bad is not None:
        tag, line = bad
        if not allow_unsafe:
            raise UnsafeConfigError(
                f"{what} {path}{via}, line {line}: refused, the tag {tag} asks YAML to create "
                "Python objects (running code from the file); configs are read with safe YAML "
                f"only. If you trust this file, pass {ALLOW_UNSAFE_CONFIG_FLAG}"
            )
        logger.warning(
            "%s %s, line %d: tag %s read with yaml.unsafe_load (%s)",
            what,
            path,
            line,
            tag,
            ALLOW_UNSAFE_CONFIG_FLAG,
        )
        return yaml.unsafe_load(text)
    return yaml.safe_load(text)


_EXPECTED_CONFIG = (
    "a YAML mapping of config keys (`KEY: value` lines, nested, optionally `_BASE_: <file>`), as "
    "the files under projects/SeeThroughNet/configs are"
)


def _is_lazy_config(data: dict) -> bool:
    """detectron2 LazyConfig content: ``_target_`` entries (``LazyConfig.save`` writes YAML)."""
    todo = [data]
    for _ in range(10000):
        if not todo:
            return False
        node = todo.pop()
        if isinstance(node, dict):
            if "_target_" in node:
                return True
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return False


def check_config_mapping(path: str, data: Any, via: str = "") -> dict:
    """``data`` (a config file's parsed YAML) if it is a mapping of config keys; otherwise a
    :class:`ConfigFileError` naming ``path`` and what was expected."""
    if data is None:
        what = "is empty (or holds only comments)"
    elif not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        what = f"holds {kind}, not a mapping of config keys"
    elif _is_lazy_config(data):
        what = (
            "is a detectron2 LazyConfig (it has `_target_` entries); this project's tools read "
            "yacs-style configs"
        )
    else:
        return data
    raise ConfigFileError(f"config file {path}{via} {what}: expected {_EXPECTED_CONFIG}")


def _config_chain(path: str, allow_unsafe: bool, parent: str = "", depth: int = 0):
    """``[(file, dict)]`` for ``path`` and its ``_BASE_`` files, resolved as fvcore's
    ``CfgNode.load_yaml_with_base`` does; a file that is not a mapping of config keys raises
    :class:`ConfigFileError`, a tag safe YAML cannot construct :class:`UnsafeConfigError` (both
    naming the file and the file whose ``_BASE_`` pulled it in). Used by
    :func:`merge_config_file` only to explain a failure of fvcore's own reading."""
    if depth > 32:
        raise ValueError(f"config file {path}: more than 32 nested {BASE_KEY} files (a cycle?)")
    via = f" ({BASE_KEY} of {parent})" if parent else ""
    _refuse_python_config(path, via)
    data = check_config_mapping(path, load_yaml_file(path, allow_unsafe=allow_unsafe, via=via), via)
    out = [(path, data)]
    if data.get(BASE_KEY):
        base = str(data[BASE_KEY])
        if base.startswith("~"):
            base = os.path.expanduser(base)
        if not base.startswith(("/", "https://", "http://")):
            base = os.path.join(os.path.dirname(path), base)
        out += _config_chain(base, allow_unsafe, path, depth + 1)
    return out


def _refuse_python_config(path: str, via: str = "") -> None:
    if str(path).endswith(".py"):
        raise ConfigFileError(
            f"config file {path}{via} is a Python file (a detectron2 LazyConfig); this project's "
            f"tools read YAML configs: expected {_EXPECTED_CONFIG}"
        )


def merge_config_file(cfg, path: str, *, allow_unsafe: bool = False) -> None:
    """``cfg.merge_from_file(path)`` read by fvcore's own safe loader, with checks around it.

    detectron2's ``merge_from_file(path, allow_unsafe=False)`` reads ``path`` and its ``_BASE_``
    chain through fvcore's ``CfgNode.load_yaml_with_base``, which parses with ``yaml.safe_load``
    and raises on any tag safe YAML cannot construct (``allow_unsafe=True``, the
    ``--allow-unsafe-config`` opt-in, lets fvcore fall back to ``yaml.unsafe_load`` with its own
    warning). The project adds only:

    * before: a ``.py`` file (a LazyConfig) is refused without being read;
    * when fvcore fails: the chain is re-read file by file (:func:`_config_chain`) to raise an
      error naming the file, the tag and its line (:class:`UnsafeConfigError`), or what the file
      holds instead of a mapping of config keys (:class:`ConfigFileError`); an error it cannot
      explain (an unknown key) is raised as fvcore raised it;
    * after: a chain that sets ``MODEL.WEIGHTS_TRUSTED: True`` is refused (only the user, on the
      command line, can vouch for weights). ``cfg`` is changed only when every check passed."""
    _refuse_python_config(path)
    staged = cfg.clone()
    try:
        staged.merge_from_file(path, allow_unsafe=allow_unsafe)
    except Exception:
        _config_chain(path, allow_unsafe)  # raises the named error where a file explains it
        raise
    trusted_key = TRUST_WEIGHTS_KEY.split(".")[-1]
    if staged.MODEL.get(trusted_key) and not cfg.MODEL.get(trusted_key):
        setters = [
            name
            for name, data in _config_chain(path, allow_unsafe)
            if isinstance(data.get("MODEL"), dict) and data["MODEL"].get(trusted_key)
        ]
        raise UnsafeConfigError(
            f"config file {setters[0] if setters else path} sets {TRUST_WEIGHTS_KEY}: a config "
            "file cannot vouch for weight files. "
            f"Remove the key; if you trust the weights, pass {TRUST_WEIGHTS_FLAG} (or "
            f"{TRUST_WEIGHTS_KEY} True) on the command line"
        )
    cfg.merge_from_other_cfg(staged)


# -------------------------------------------------------------------------------------- pickles
def _numpy_objects() -> Dict[str, Callable]:
    import numpy as np

    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    return {
        "ndarray": np.ndarray,
        "dtype": np.dtype,
        "_reconstruct": multiarray._reconstruct,
        "scalar": multiarray.scalar,
        "_frombuffer": numeric._frombuffer,
    }


# The globals a pickle of numpy arrays / scalars refers to (numpy 1.x and 2.x module names):
# ndarray.__reduce__ -> _reconstruct(ndarray, shape, dtype) + __setstate__; protocol 5 ->
# _frombuffer(buffer, dtype, shape, order); numpy scalars -> scalar(dtype, bytes).
NUMPY_GLOBALS = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.numeric", "_frombuffer"): "_frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
}


def _plain_globals() -> Dict[Tuple[str, str], Any]:
    import codecs
    import collections

    # bytes in pickle protocols 0-2 are written as _codecs.encode(str, "latin1") / bytes(),
    # sets as set(list) (protocol 4+ has opcodes for them); complex numbers as complex(re, im);
    # OrderedDict is a dict (torch state dicts are ones).
    return {
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("__builtin__", "frozenset"): frozenset,
        ("_codecs", "encode"): codecs.encode,
        ("builtins", "bytes"): bytes,
        ("__builtin__", "bytes"): bytes,
        ("builtins", "complex"): complex,
        ("__builtin__", "complex"): complex,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts (incl. ``OrderedDict``), lists, tuples, sets, strings,
    bytes, numbers and numpy arrays / scalars; any other global raises ``UnpicklingError``."""

    def find_class(self, module, name):
        key = (module, name)
        if key in NUMPY_GLOBALS:
            return _numpy_objects()[NUMPY_GLOBALS[key]]
        plain = _plain_globals()
        if key in plain:
            return plain[key]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"persistent id {pid!r} is not allowed")


def _refuse(path: str, detail: str, hint: str) -> UntrustedWeightsError:
    return UntrustedWeightsError(
        f"{path}: refused to load: it holds more than tensors, numpy arrays, numbers, strings and "
        f"containers ({detail}); unpickling it would run code from the file. {hint}"
    )


def _warn_trusted(path: str, detail: str) -> None:
    logger.warning(
        "%s: loading with the full unpickler (%s; trusted by %s / %s): %s",
        path,
        detail,
        TRUST_WEIGHTS_FLAG,
        TRUST_WEIGHTS_KEY,
        "code in the file runs",
    )


def load_pickle_file(path: str, *, trusted: bool = False, hint: str = TRUST_WEIGHTS_HINT) -> Any:
    """A plain pickle (``.pkl``; Python 2 pickles read as latin1) through
    :class:`RestrictedUnpickler`; ``trusted``: the full ``pickle`` (with a warning) if the
    restricted one refuses."""
    from detectron2.utils.file_io import PathManager

    with PathManager.open(path, "rb") as f:
        data = f.read()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        if not trusted:
            raise _refuse(path, str(e), hint) from None
        _warn_trusted(path, str(e))
        return pickle.loads(data, encoding="latin1")


def _torch_safe_globals():
    import numpy as np

    objs = _numpy_objects()
    # (object, "module.name") pairs: the name a file may use, for each alias (numpy 1 / 2)
    out = [(objs[v], f"{m}.{n}") for (m, n), v in NUMPY_GLOBALS.items()]
    # torch's unpickler also checks the type of each dtype it sets state on (numpy >= 1.25:
    # numpy.dtypes.Float32DType, ...): the dtype classes of the non-object array kinds.
    out += sorted({type(np.dtype(c)) for c in np.typecodes["All"] if c != "O"}, key=str)
    return out


def _torch_detail(e: Exception) -> str:
    """The offending global / opcode from torch's weights_only error (its wording varies)."""
    import re

    msg = str(e)
    m = re.search(r"GLOBAL ([\w.]+)", msg)
    if m:
        return f"global {m.group(1)} is not allowed"
    m = re.search(r"WeightsUnpickler error: ([^\n]+)", msg)
    if m:
        return m.group(1).strip()[:300]
    return "torch.load(weights_only=True) refused it"


def load_torch_file(path: str, *, trusted: bool = False, hint: str = TRUST_WEIGHTS_HINT) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, numpy arrays allowed;
    ``trusted``: ``weights_only=False`` (with a warning) if the safe load refuses the file."""
    import torch

    try:
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _torch_detail(e)
        if not trusted:
            raise _refuse(path, detail, hint) from None
        _warn_trusted(path, detail)
        return torch.load(path, map_location="cpu", weights_only=False)


def load_weights_file(path: str, *, trusted: bool = False, hint: str = TRUST_WEIGHTS_HINT) -> Any:
    """A weight / checkpoint file: ``.pkl`` by :func:`load_pickle_file`, anything else
    (``.pth``, ``.pt``, ``.pyth``, ...) by :func:`load_torch_file`."""
    if str(path).endswith(".pkl"):
        return load_pickle_file(path, trusted=trusted, hint=hint)
    return load_torch_file(path, trusted=trusted, hint=hint)


# ---------------------------------------------------------------------------- command lines
def add_safety_arguments(parser, weights: bool = True):
    """Add ``--allow-unsafe-config`` (and ``--trust-weights-file``) to an argparse parser."""
    parser.add_argument(
        ALLOW_UNSAFE_CONFIG_FLAG,
        action="store_true",
        help="read YAML configs that hold Python tags (!!python/...) with yaml.unsafe_load; such a "
        "file can run code, so only for configs you trust (off: they are refused)",
    )
    if weights:
        parser.add_argument(
            TRUST_WEIGHTS_FLAG,
            action="store_true",
            help="load weight files holding pickled Python objects with the full unpickler "
            "(same as "
            f"{TRUST_WEIGHTS_KEY} True); such a file can run code, so only for files you trust",
        )
    return parser


def apply_safety_arguments(args, opts) -> list:
    """``opts`` plus ``MODEL.WEIGHTS_TRUSTED True`` when ``args.trust_weights_file``."""
    opts = list(opts or [])
    if getattr(args, "trust_weights_file", False):
        opts += [TRUST_WEIGHTS_KEY, "True"]
    return opts
