from .cityscapes import CityscapesOfficialSemSegEvaluator

__all__ = ["CityscapesOfficialSemSegEvaluator"]
