"""detectron2's ``SemSegEvaluator`` with the project's metrics (:mod:`.metrics`).

detectron2 v0.6 (route A) and upstream main (route B) accumulate the same confusion matrix but
compute ``mIoU`` from it differently; this evaluator keeps detectron2's accumulation and
computes every reported number itself (:func:`~.metrics.sem_seg_metrics`), so the same
predictions give the same ``sem_seg/mIoU`` on both installs. Upstream's boundary-IoU extras are
not computed (route A has none).
"""

import itertools
import json
import os
from collections import OrderedDict

import torch
from detectron2.evaluation import SemSegEvaluator
from detectron2.utils.comm import all_gather, is_main_process, synchronize

from ..utils.atomic import atomic_path, write_text_atomic
from .metrics import MIOU_DEFINITION, sem_seg_metrics

__all__ = ["ProjectSemSegEvaluator"]


class ProjectSemSegEvaluator(SemSegEvaluator):
    """Reports under ``sem_seg`` with the keys of detectron2's evaluator (``mIoU``, ``fwIoU``,
    ``IoU-<class>``, ``mACC``, ``pACC``, ``ACC-<class>``), defined in :mod:`.metrics`; writes
    ``sem_seg_predictions.json`` and ``sem_seg_evaluation.pth`` to ``output_dir`` atomically."""

    def evaluate(self):
        conf, predictions = self._conf_matrix, self._predictions
        if self._distributed:
            synchronize()
            conf_list = all_gather(self._conf_matrix)
            pred_lists = all_gather(self._predictions)
            if not is_main_process():
                return None
            conf = sum(conf_list[1:], conf_list[0].copy())
            predictions = list(itertools.chain(*pred_lists))
        if self._output_dir:
            write_text_atomic(
                os.path.join(self._output_dir, "sem_seg_predictions.json"), json.dumps(predictions)
            )
        res = sem_seg_metrics(conf, self._class_names)
        if self._output_dir:
            with atomic_path(os.path.join(self._output_dir, "sem_seg_evaluation.pth")) as tmp:
                torch.save(res, tmp)
        counted = sum(1 for name in self._class_names if res[f"IoU-{name}"] == res[f"IoU-{name}"])
        self._logger.info(
            f"sem_seg/mIoU {res['mIoU']:.4f}: {MIOU_DEFINITION}; {counted} of "
            f"{len(self._class_names)} classes counted"
        )
        results = OrderedDict({"sem_seg": res})
        self._logger.info(results)
        return results
