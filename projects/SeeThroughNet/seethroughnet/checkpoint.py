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

Checkpoints and ``last_checkpoint`` are written to a temporary name and renamed, so a run killed
while saving leaves the previous checkpoint intact; ``--resume`` passes over a newest checkpoint
that is missing, empty or truncated (with a warning naming it) to the previous one, and over a
``last_checkpoint`` that is not text (a warning naming it) to the newest checkpoint in the folder.
The temporary files of a killed write are removed, with a warning naming each, when training
starts (with or without ``--resume``) and by any ``--resume``.
"""

import logging
import os
import pickle
import re
import zipfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .nn.layers import short_list
from .utils.atomic import atomic_path
from .utils.safe_load import UnsafeFileError, load_weights_file

__all__ = [
    "CheckpointMismatchError",
    "SafeCheckpointer",
    "StrictCheckpointer",
    "UnreadableCheckpointError",
]


class CheckpointMismatchError(RuntimeError):
    pass


class UnreadableCheckpointError(RuntimeError):
    """A checkpoint file that is missing, empty or truncated."""


def check_checkpoint_file(path) -> None:
    """Raise :class:`UnreadableCheckpointError` naming ``path`` if it cannot be a whole checkpoint
    (missing, empty, or a zip archive, torch's format, cut short). URLs are left to the loader."""
    if "://" in str(path):
        return
    if not os.path.isfile(path):
        raise UnreadableCheckpointError(
            f"checkpoint {path} does not exist (check MODEL.WEIGHTS / --weights)"
        )
    if os.path.getsize(path) == 0:
        raise UnreadableCheckpointError(
            f"checkpoint {path} is empty: it was not written completely; use another checkpoint"
        )
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise UnreadableCheckpointError(
                f"checkpoint {path} is truncated or corrupt ({e}): it was not written completely; "
                "use another checkpoint (train_net.py --resume falls back to the previous one)"
            ) from None


def _iteration_of(name):
    if name == "model_final.pth":
        return float("inf")
    m = re.fullmatch(r"model_(\d+)\.pth", name)
    return int(m.group(1)) if m else None


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
            raise ValueError(
                f"checkpoint {filename} holds a {type(data).__name__}, not a dict of weights"
            )
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
                raise ValueError(
                    f"cannot load .pyth file {filename}; pycls checkpoints must contain "
                    "'model_state'"
                )
            state = {
                k: v
                for k, v in data["model_state"].items()
                if not k.endswith("num_batches_tracked")
            }
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        if "model" not in data:
            data = {"model": data}
        return data

    def load(self, path, *args, **kwargs):
        if path:
            check_checkpoint_file(path)
        try:
            return super().load(path, *args, **kwargs)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
            # torch's zip reader and pickle do not name the file
            unreadable = not isinstance(e, RuntimeError) or "PytorchStreamReader" in str(e)
            if not unreadable or isinstance(e, (CheckpointMismatchError, UnsafeFileError)):
                raise
            raise UnreadableCheckpointError(
                f"cannot read checkpoint {path} ({e}): it is truncated or corrupt; use another "
                "checkpoint"
            ) from e

    # ---- writing: a temporary name, then one rename -------------------------------------------
    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        with atomic_path(save_file) as tmp:
            torch.save(data, tmp)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename):
        with atomic_path(os.path.join(self.save_dir, "last_checkpoint")) as tmp:
            with open(tmp, "w") as f:
                f.write(last_filename_basename)

    # ---- resuming: the newest readable checkpoint ---------------------------------------------
    def get_checkpoint_file(self):
        """The checkpoint ``last_checkpoint`` names, or "" when there is none or it does not hold
        text (bytes that are not UTF-8: a warning names the file; fvcore would raise a bare
        ``UnicodeDecodeError``)."""
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with self.path_manager.open(save_file, "rb") as f:
                raw = f.read()
        except OSError:  # missing, or just removed by another process
            return ""
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            logging.getLogger(__name__).warning(
                f"{save_file} does not hold a checkpoint name ({len(raw)} bytes that are not "
                f"text); ignoring it and resuming from the newest readable model_*.pth in "
                f"{self.save_dir}"
            )
            return ""
        return os.path.join(self.save_dir, name) if name else ""

    def remove_stale_part_files(self):
        """Remove the temporary files (``.<name>.<random>.part<suffix>``, :func:`atomic_path`) that
        a run killed while writing left in ``save_dir``, with a warning naming each."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return
        log = logging.getLogger(__name__)
        for stale in sorted(os.listdir(self.save_dir)):
            path = os.path.join(self.save_dir, stale)
            if stale.startswith(".") and ".part" in stale and os.path.isfile(path):
                log.warning(f"removing {path}, a file a killed run left half-written")
                try:
                    os.remove(path)
                except FileNotFoundError:  # another rank removed it first
                    pass

    def resume_candidates(self):
        """The checkpoint named by ``last_checkpoint`` first, then the others in ``save_dir``,
        newest (highest iteration) first."""
        tagged = self.get_checkpoint_file()
        names = (
            [n for n in os.listdir(self.save_dir) if _iteration_of(n) is not None]
            if os.path.isdir(self.save_dir)
            else []
        )
        ordered = [
            os.path.join(self.save_dir, n) for n in sorted(names, key=_iteration_of, reverse=True)
        ]
        if tagged and os.path.basename(tagged) != "":
            ordered = [tagged] + [
                p for p in ordered if os.path.abspath(p) != os.path.abspath(tagged)
            ]
        return ordered

    def has_checkpoint(self):
        return super().has_checkpoint() or bool(self.resume_candidates())

    def resume_or_load(self, path, *, resume=True):
        # Temporary files of a killed write go at a training start (the checkpointer that saves
        # the trainer) and at any --resume. An --eval-only start without --resume leaves them:
        # its OUTPUT_DIR may be the folder of a training that is running.
        if resume or "trainer" in self.checkpointables:
            self.remove_stale_part_files()
        if not (resume and self.has_checkpoint()):
            return super().resume_or_load(path, resume=False)
        log = logging.getLogger(__name__)
        skipped = []
        for candidate in self.resume_candidates():
            try:
                result = self.load(
                    candidate
                )  # a file that cannot be read fails before any state changes
            except UnreadableCheckpointError as e:
                log.warning(f"cannot resume from {candidate}, skipping it: {e}")
                skipped.append(candidate)
                continue
            if skipped:
                log.warning(f"resumed from {candidate} instead of {skipped[0]}")
            return result
        raise UnreadableCheckpointError(
            f"--resume: no readable checkpoint in {self.save_dir} (tried "
            f"{', '.join(skipped) or 'none'}). "
            "Remove the broken files and last_checkpoint to start afresh, or choose another "
            "OUTPUT_DIR."
        )


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
        shapes = [
            f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})"
            for k, a, b in incompatible.incorrect_shapes
        ]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing keys: {short_list(missing)}")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected keys: {short_list(unexpected)}")
            if shapes:
                parts.append(f"{len(shapes)} shape mismatches: {short_list(shapes)}")
            raise CheckpointMismatchError(
                f"checkpoint {self._loading} does not match the model ("
                + "; ".join(parts)
                + "). It was probably saved from another architecture or config. Use the config "
                "it was trained with, or set MODEL.WEIGHTS_ALLOW_PARTIAL True to load only the "
                "matching weights."
            )
        return incompatible
