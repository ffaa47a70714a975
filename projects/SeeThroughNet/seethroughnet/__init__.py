"""SeeThroughNet and Class Probability Preserving (CPP) pooling.

The science lives in :mod:`seethroughnet.nn` (plain PyTorch, no detectron2 import).
The detectron2 glue (config keys, registries, dataset mappers, evaluators) lives in
:mod:`seethroughnet.config`, :mod:`seethroughnet.modeling`, :mod:`seethroughnet.data` and
:mod:`seethroughnet.evaluation`, and is imported only by code that uses detectron2.
"""

__version__ = "0.1.0"
