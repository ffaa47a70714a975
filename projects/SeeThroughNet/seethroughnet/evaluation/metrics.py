"""Semantic-segmentation metrics from a confusion matrix, in plain numpy.

One definition of every number, whichever detectron2 is installed. detectron2 v0.6 and upstream
main disagree on ``mIoU`` when a class is predicted but absent from the whole ground truth (v0.6
counts it as IoU 0, upstream main leaves it out); the project's evaluator therefore computes all
metrics here, from the confusion matrix alone:

* ``IoU-<class>`` = TP / (TP + FP + FN), over the pixels whose ground truth is not ignored; NaN
  where the union TP + FP + FN is empty (the class is neither in the ground truth nor predicted);
* ``mIoU`` = the mean of the per-class IoUs that are not NaN, i.e. over the classes whose union is
  non-empty. A class predicted but absent from the ground truth counts with IoU 0. This is the
  definition of cityscapesscripts (``evalPixelLevelSemanticLabeling``: ``getIouScoreForLabel``
  returns NaN for an empty union, ``getScoreAverage`` skips NaN) and of MMSegmentation
  (``IoUMetric``: intersection / union per class, ``np.nanmean``), so the numbers of Table 1's
  reference runs, the Cityscapes benchmark and this project's evaluator read the same. It is also
  detectron2 v0.6's mIoU (install route A);
* ``ACC-<class>`` = TP / ground-truth pixels, NaN where the class has none; ``mACC`` their mean;
* ``pACC`` = all TP / all non-ignored ground-truth pixels;
* ``fwIoU`` = the IoUs weighted by each class's share of the ground-truth pixels.

All in percent, as detectron2 reports them.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

__all__ = ["MIOU_DEFINITION", "sem_seg_metrics"]

MIOU_DEFINITION = (
    "mean IoU over the classes present in the ground truth or the prediction (a class predicted "
    "but absent from the ground truth counts as 0; cityscapesscripts' and MMSegmentation's "
    "definition)"
)


def sem_seg_metrics(conf_matrix, class_names: Sequence[str]) -> Dict[str, float]:
    """The metrics above from ``conf_matrix``, laid out as detectron2's ``SemSegEvaluator``
    accumulates it: ``(K + 1) x (K + 1)``, ``[predicted, ground truth]``, the last row and column
    the ignored pixels (which are left out)."""
    conf = np.asarray(conf_matrix, dtype=np.float64)
    k = len(class_names)
    if conf.shape != (k + 1, k + 1):
        raise ValueError(
            f"confusion matrix of shape {conf.shape} for {k} classes; expected {(k + 1, k + 1)}"
        )
    conf = conf[:k, :k]
    tp = np.diagonal(conf)
    gt = conf.sum(axis=0)
    pred = conf.sum(axis=1)
    union = gt + pred - tp
    in_gt = gt > 0
    iou = np.full(k, np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    acc = np.full(k, np.nan)
    np.divide(tp, gt, out=acc, where=in_gt)
    total = gt.sum()

    def mean(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")

    res = {
        "mIoU": 100 * mean(iou),
        "fwIoU": 100 * float((iou[in_gt] * gt[in_gt]).sum() / total) if total else float("nan"),
    }
    for name, v in zip(class_names, iou):
        res[f"IoU-{name}"] = 100 * float(v)
    res["mACC"] = 100 * mean(acc)
    res["pACC"] = 100 * float(tp.sum() / total) if total else float("nan")
    for name, v in zip(class_names, acc):
        res[f"ACC-{name}"] = 100 * float(v)
    return res
