"""The installed detectron2 works on this stack: imports, model zoo, the three detectors of
Table 5 (one CPU training step and one inference each), and clear errors for the compiled ops
a Python-only install lacks."""

import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from detectron2 import model_zoo  # noqa: E402
from detectron2.config import get_cfg, instantiate  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402


def _has_compiled_ops():
    try:
        from detectron2 import _C  # noqa: F401

        return True
    except ImportError:
        return False


def _batch(num_classes, with_masks, h=128, w=256):
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(2):
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.tensor([[10.0, 20.0, 90.0, 100.0], [120.0, 30.0, 200.0, 90.0]]))
        inst.gt_classes = torch.tensor([0, num_classes - 1])
        if with_masks:
            m = torch.zeros(2, h, w, dtype=torch.bool)
            m[0, 20:100, 10:90] = True
            m[1, 30:90, 120:200] = True
            inst.gt_masks = BitMasks(m)
        batch.append(
            {
                "image": torch.randint(0, 255, (3, h, w), generator=g).float(),
                "instances": inst,
                "height": h,
                "width": w,
            }
        )
    return batch


def _step_and_infer(model, batch):
    model.train()
    with EventStorage(0):
        losses = model(batch)
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"], "height": 128, "width": 256}])
    assert "instances" in out[0]
    return losses


def _yaml_cfg(path, num_classes):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(path))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    return cfg


def test_core_modules_import():
    import detectron2.evaluation  # noqa: F401
    import detectron2.modeling  # noqa: F401
    from detectron2.engine import DefaultTrainer  # noqa: F401
    from detectron2.evaluation import (  # noqa: F401
        CityscapesSemSegEvaluator,
        COCOEvaluator,
        SemSegEvaluator,
    )


def test_mask_rcnn_trains_and_infers_on_cpu():
    torch.manual_seed(0)
    model = build_model(_yaml_cfg("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", 8))
    losses = _step_and_infer(model, _batch(8, with_masks=True))
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls"} <= set(losses)


def test_faster_rcnn_trains_and_infers_on_cpu():
    torch.manual_seed(0)
    model = build_model(_yaml_cfg("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", 8))
    losses = _step_and_infer(model, _batch(8, with_masks=False))
    assert "loss_mask" not in losses


def test_fcos_with_groupnorm_trains_and_infers_on_cpu():
    torch.manual_seed(0)
    cfg = model_zoo.get_config("COCO-Detection/fcos_R_50_FPN_1x.py")
    cfg.model.num_classes = 8
    cfg.model.head.norm = "GN"  # the v0.6 probe get_norm("GN", 1) used to raise here
    cfg.model.backbone.bottom_up.freeze_at = 0
    model = instantiate(cfg.model)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.head.modules())
    losses = _step_and_infer(model, _batch(8, with_masks=False))
    assert {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"} <= set(losses)


@pytest.mark.skipif(_has_compiled_ops(), reason="detectron2 was built with its compiled ops")
def test_missing_compiled_ops_fail_clearly_only_when_called():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated  # import works

    with pytest.raises(RuntimeError, match="rotated boxes.*cannot run"):
        pairwise_iou_rotated(torch.zeros(1, 5), torch.zeros(1, 5))
    from detectron2.evaluation.fast_eval_api import COCOeval_opt  # import works

    assert COCOeval_opt is not None


def test_numpy_and_pillow_fixes():
    import numpy as np
    from detectron2.data.transforms import ExtentTransform
    from detectron2.evaluation import SemSegEvaluator  # noqa: F401
    from detectron2.structures.masks import polygons_to_bitmask
    from PIL import Image

    assert ExtentTransform((0, 0, 8, 8), (4, 4)).interp == Image.BILINEAR
    m = polygons_to_bitmask([np.array([0, 0, 4, 0, 4, 4, 0, 4], dtype=float)], 8, 8)
    assert m.dtype == bool and m.sum() > 0
