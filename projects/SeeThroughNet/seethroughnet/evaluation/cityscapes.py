"""Cityscapes' own pixel-level evaluation next to detectron2's ``SemSegEvaluator``."""

from .. import cityscapes_alias

# upstream detectron2 main's evaluator imports cityscapesscripts under an internal path when run
cityscapes_alias.install()

from detectron2.evaluation import CityscapesSemSegEvaluator  # noqa: E402

__all__ = ["CityscapesOfficialSemSegEvaluator"]


class CityscapesOfficialSemSegEvaluator(CityscapesSemSegEvaluator):
    """detectron2's wrapper of cityscapesscripts' ``evalPixelLevelSemanticLabeling`` (it maps
    trainIds to labelIds and scores IoU, iIoU and the category-level variants), reporting
    under ``cityscapes_sem_seg`` so that it can run beside ``SemSegEvaluator`` (``sem_seg``)."""

    def evaluate(self):
        results = super().evaluate()
        if results is None:  # non-main process
            return None
        return {"cityscapes_sem_seg": results["sem_seg"]}
