"""The registry of state-dict key maps: ``KEY_MAPS[source][model]`` is a function that takes the
source checkpoint's keys (an iterable of ``str``) and returns ``{source_key: project_key}`` for
every key it converts. The converter (``seethroughnet.conversion.<source>``) checks the result
against the project model's own keys and shapes and reports the rest; a key map only renames.

Sources: ``"mmseg"`` (MMSegmentation 0.x/1.x checkpoints of the seven Table 1 models; ``model`` is
the project's ``MODEL.DECODE_HEAD.NAME``: psp, deeplabv3plus, upernet, dmnet, ccnet, ann, ocr);
``"nvidia"`` and ``"hrnet_ocr"`` (NVIDIA/semantic-segmentation and HRNet-OCR checkpoints, in
NVIDIA's names after ``seethroughnet.conversion.ocr_references.canonical_state_dict``; ``model``
is ``"seethroughnet"`` or ``"ocr"``, the OCRNet-HRNet).
"""

from typing import Callable, Dict, Iterable

__all__ = ["KEY_MAPS", "KeyMap", "register_key_map"]

KeyMap = Callable[[Iterable[str]], Dict[str, str]]
KEY_MAPS: Dict[str, Dict[str, KeyMap]] = {}


def register_key_map(source: str, model: str):
    """Decorator: register ``fn`` as the key map of ``model`` checkpoints from ``source``."""

    def register(fn: KeyMap) -> KeyMap:
        models = KEY_MAPS.setdefault(source, {})
        if model in models:
            raise ValueError(f"key map {source}/{model} registered twice")
        models[model] = fn
        return fn

    return register
