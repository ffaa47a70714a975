"""A detectron2 checkpointer that refuses a silent partial load.

detectron2's ``DetectionCheckpointer`` loads whatever matches and only logs the keys that do
not; a checkpoint of another architecture then trains or evaluates a half-random model. Here
a mismatch is an error that lists the missing, unexpected and wrongly-shaped keys, unless
``MODEL.WEIGHTS_ALLOW_PARTIAL`` is set.

Both checkpointers here read files without running code from them (:class:`SafeCheckpointer`):
``.pth`` with ``torch.load(weights_only=True)``, ``.pkl`` through a restricted unpickler (see
:mod:`seethroughnet.utils.safe_load`), for ``MODEL.WEIGHTS`` and for ``--resume`` alike. A file
holding other pickled objects is refused unless the checkpointer is ``trusted``
(``--trust-weights-file`` / ``MODEL.WEIGHTS_TRUSTED``).
"""
from detectron2.checkpoint import DetectionCheckpointer

from .utils.safe_load import load_weights_file

__all__ = ["CheckpointMismatchError", "SafeCheckpointer", "StrictCheckpointer"]


class CheckpointMismatchError(RuntimeError):
    pass


def _listing(keys, limit=12):
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


class SafeCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` with its file reading (``_load_file``) done by
    :func:`~seethroughnet.utils.safe_load.load_weights_file`; the model-zoo conventions of
    ``.pkl`` (Detectron2 / Caffe2 layouts) and ``.pyth`` (pycls) files are kept."""

    def __init__(self, model, save_dir="", *, trusted=False, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.trusted = bool(trusted)

    def _load_file(self, filename):
        data = load_weights_file(filename, trusted=self.trusted)
        if not isinstance(data, dict):
            raise ValueError(f"checkpoint {filename} holds a {type(data).__name__}, not a dict of weights")
        if filename.endswith(".pkl"):  # as DetectionCheckpointer._load_file
            if "model" in data and "__author__" in data:  # detectron2 model zoo
                self.logger.info("Reading a file from '{}'".format(data["__author__"]))
                return data
            if "blobs" in data:  # Caffe2 / Detectron1 detection models
                data = data["blobs"]
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):  # pycls
            if "model_state" not in data:
                raise ValueError(f"cannot load .pyth file {filename}; pycls checkpoints must contain 'model_state'")
            state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        if "model" not in data:
            data = {"model": data}
        return data


class StrictCheckpointer(SafeCheckpointer):
    def __init__(self, model, save_dir="", *, allow_partial=False, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.allow_partial = allow_partial
        self._loading = None

    def load(self, path, *args, **kwargs):
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = None

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        if self.allow_partial or incompatible is None:
            return incompatible
        missing = list(incompatible.missing_keys)
        unexpected = list(incompatible.unexpected_keys)
        shapes = [f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in incompatible.incorrect_shapes]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
            if shapes:
                parts.append(f"{len(shapes)} shape mismatches: {_listing(shapes)}")
            raise CheckpointMismatchError(
                f"checkpoint {self._loading} does not match the model ("
                + "; ".join(parts)
                + "). It was probably saved from another architecture or config. Use the config "
                "it was trained with, or set MODEL.WEIGHTS_ALLOW_PARTIAL True to load only the "
                "matching weights."
            )
        return incompatible
