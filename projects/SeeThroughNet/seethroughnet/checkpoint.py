"""A detectron2 checkpointer that refuses a silent partial load.

detectron2's ``DetectionCheckpointer`` loads whatever matches and only logs the keys that do
not; a checkpoint of another architecture then trains or evaluates a half-random model. Here
a mismatch is an error that lists the missing, unexpected and wrongly-shaped keys, unless
``MODEL.WEIGHTS_ALLOW_PARTIAL`` is set.
"""
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["CheckpointMismatchError", "StrictCheckpointer"]


class CheckpointMismatchError(RuntimeError):
    pass


def _listing(keys, limit=12):
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


class StrictCheckpointer(DetectionCheckpointer):
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
