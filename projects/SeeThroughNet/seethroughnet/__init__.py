"""SeeThroughNet and Class Probability Preserving (CPP) pooling.

The science lives in :mod:`seethroughnet.nn` (plain PyTorch, no detectron2 import).
The detectron2 glue (config keys, registries, dataset mappers, evaluators) lives in
:mod:`seethroughnet.config`, :mod:`seethroughnet.modeling`, :mod:`seethroughnet.data` and
:mod:`seethroughnet.evaluation`, and is imported only by code that uses detectron2.
A trained model on your own images: ``from seethroughnet import Predictor``
(:mod:`seethroughnet.predictor`, imported on first use; ``docs/predictor.md``).
"""

__version__ = "0.1.0"

__all__ = ["Predictor", "Prediction"]


def __getattr__(name):
    # lazy: ``import seethroughnet`` (and seethroughnet.nn) stays free of detectron2
    if name in ("Predictor", "Prediction"):
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'seethroughnet' has no attribute {name!r}")
