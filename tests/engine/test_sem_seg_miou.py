"""One mIoU on both detectron2 install routes (issue #25).

detectron2 v0.6 (route A) and upstream main (route B) define ``sem_seg/mIoU`` differently when a
class is predicted but absent from the whole ground truth: v0.6 counts it as IoU 0, upstream leaves
it out. The project's evaluator computes every metric from the confusion matrix itself, with one
definition: the mean IoU over the classes whose union (ground truth or prediction, ignored pixels
left out) is not empty, as cityscapesscripts' ``evalPixelLevelSemanticLabeling`` and
MMSegmentation's ``IoUMetric`` do. The expected numbers below are counted by hand; the same test
runs on both routes in CI, which is the cross-route check."""

import math
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("detectron2")

CLASSES = ["a", "b", "c", "d", "e"]  # d: predicted, never in the ground truth; e: in neither
IGNORE = 255
GT = [
    np.array([[0, 0, 1, 1], [2, 2, IGNORE, IGNORE]], np.uint8),
    np.array([[0, 0, 0, 0], [1, 1, 2, 2]], np.uint8),
]
PRED = [
    np.array([[0, 1, 1, 1], [2, 3, 3, 0]], np.int64),  # the last two pixels are ignored
    np.array([[0, 0, 3, 0], [1, 1, 2, 2]], np.int64),
]

# Counted by hand over the 12 labelled pixels (the two ignored ones left out):
#   class  tp  gt  pred  union        IoU
#   a       4   6   4     6 + 4 - 4    4/6
#   b       4   4   5     4 + 5 - 4    4/5
#   c       3   4   3     4 + 3 - 3    3/4
#   d       0   0   2     2            0     (predicted, absent from the ground truth)
#   e       0   0   0     0            -     (absent from both: left out)
IOU = {"a": 4 / 6, "b": 4 / 5, "c": 3 / 4, "d": 0.0}
MIOU = 100 * (4 / 6 + 4 / 5 + 3 / 4 + 0.0) / 4  # 55.4167; upstream main's own: 73.89 (over a-c)
MACC = 100 * (4 / 6 + 4 / 4 + 3 / 4) / 3  # over the classes in the ground truth
PACC = 100 * 11 / 14
FWIOU = 100 * (6 * 4 / 6 + 4 * 4 / 5 + 4 * 3 / 4) / 14


@pytest.fixture
def dataset(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = f"t_miou_{uuid.uuid4().hex[:8]}"
    dicts = []
    for i, gt in enumerate(GT):
        path = tmp_path / f"gt{i}.png"
        Image.fromarray(gt).save(path)
        dicts.append(
            {"file_name": f"img{i}.png", "sem_seg_file_name": str(path), "height": 2, "width": 4}
        )
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(
        stuff_classes=CLASSES, ignore_label=IGNORE, evaluator_type="sem_seg"
    )
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _evaluate(evaluator):
    evaluator.reset()
    for i, pred in enumerate(PRED):
        logits = torch.nn.functional.one_hot(torch.from_numpy(pred), len(CLASSES))
        evaluator.process([{"file_name": f"img{i}.png"}], [{"sem_seg": logits.permute(2, 0, 1)}])
    return evaluator.evaluate()["sem_seg"]


def test_project_evaluator_miou_counts_a_predicted_absent_class_as_zero(dataset, tmp_path):
    from seethroughnet.engine import Trainer

    res = _evaluate(Trainer.build_evaluator(None, dataset, output_folder=str(tmp_path / "eval")))
    assert res["mIoU"] == pytest.approx(MIOU, abs=1e-9)
    for name, iou in IOU.items():
        assert res[f"IoU-{name}"] == pytest.approx(100 * iou, abs=1e-9), name
    assert math.isnan(res["IoU-e"])
    # the mIoU is the mean of the per-class IoUs the evaluator reports
    per_class = [res[f"IoU-{c}"] for c in CLASSES]
    assert res["mIoU"] == pytest.approx(np.nanmean(per_class), abs=1e-9)
    assert res["mACC"] == pytest.approx(MACC, abs=1e-9)
    assert res["pACC"] == pytest.approx(PACC, abs=1e-9)
    assert res["fwIoU"] == pytest.approx(FWIOU, abs=1e-9)
    saved = torch.load(tmp_path / "eval" / "sem_seg_evaluation.pth", weights_only=True)
    assert saved["mIoU"] == pytest.approx(MIOU, abs=1e-9)


def test_route_a_detectron2_semsegevaluator_has_the_same_miou(dataset):
    """The definition is route A's (detectron2 v0.6): there its own evaluator's mIoU is the same
    number. Upstream main's own evaluator averages over a, b and c only."""
    import inspect

    from detectron2.evaluation import SemSegEvaluator

    res = _evaluate(SemSegEvaluator(dataset, distributed=False))
    if "sem_seg_loading_fn" in inspect.signature(SemSegEvaluator).parameters:  # upstream main
        assert res["mIoU"] == pytest.approx(100 * (4 / 6 + 4 / 5 + 3 / 4) / 3, abs=1e-9)
    else:
        assert res["mIoU"] == pytest.approx(MIOU, abs=1e-9)
