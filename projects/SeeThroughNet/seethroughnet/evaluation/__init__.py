from .cityscapes import CityscapesOfficialSemSegEvaluator
from .metrics import MIOU_DEFINITION, sem_seg_metrics
from .sem_seg import ProjectSemSegEvaluator

__all__ = [
    "CityscapesOfficialSemSegEvaluator",
    "MIOU_DEFINITION",
    "ProjectSemSegEvaluator",
    "sem_seg_metrics",
]
