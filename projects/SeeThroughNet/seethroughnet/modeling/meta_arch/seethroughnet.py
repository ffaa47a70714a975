"""SeeThroughNet as a detectron2 meta-architecture.

A thin adapter around the plain-PyTorch :class:`seethroughnet.nn.seethroughnet.SeeThroughNet`:
it normalises and pads detectron2's batched inputs, passes the labels to the model's losses
(Eqs. 5-7, each term returned under its own name so the trainer logs it), stops on a
non-finite loss term naming the term and iteration, and resizes inference logits back to
each image's original size.
"""

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from ...nn.seethroughnet import SeeThroughNet
from ..common import check_finite_losses, normalized_images, padded_labels, semantic_outputs

__all__ = ["SeeThroughNetSegmentor", "build_seethroughnet_from_cfg"]


def build_seethroughnet_from_cfg(cfg) -> SeeThroughNet:
    """The plain model with every hyper-parameter taken from the config."""
    st, t = cfg.MODEL.SEE_THROUGH, cfg.TEST.SEE_THROUGH
    if len(st.AUX_LOSS_WEIGHTS) != 3:
        raise ValueError(
            "MODEL.SEE_THROUGH.AUX_LOSS_WEIGHTS needs 3 values (strides 16, 8, 4), got "
            f"{list(st.AUX_LOSS_WEIGHTS)}"
        )
    slide = t.MODE == "slide"
    if t.MODE not in ("whole", "slide"):
        raise ValueError(f"TEST.SEE_THROUGH.MODE must be 'whole' or 'slide', got {t.MODE!r}")
    return SeeThroughNet(
        num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        backbone=cfg.MODEL.HRNET.VARIANT,
        checkpoint=cfg.MODEL.HRNET.CHECKPOINT or None,
        trust_checkpoint=cfg.MODEL.WEIGHTS_TRUSTED,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        norm=cfg.MODEL.HRNET.NORM,
        fuse_upsample=cfg.MODEL.HRNET.FUSE_UPSAMPLE,
        fuse_align_corners=cfg.MODEL.HRNET.FUSE_ALIGN_CORNERS,
        head_norm=st.HEAD_NORM,
        decoder_head_channels=st.DECODER_CHANNELS or None,
        decoder_attention_channels=st.DECODER_ATTENTION_CHANNELS,
        use_scale_attention=st.USE_SCALE_ATTENTION,
        ocr_mid_channels=st.OCR_MID_CHANNELS,
        ocr_key_channels=st.OCR_KEY_CHANNELS,
        ocr_dropout=st.OCR_DROPOUT,
        scale_attention_channels=st.SCALE_ATTENTION_CHANNELS,
        train_resolutions=tuple(st.TRAIN_SCALES),
        aux_loss_kind=st.AUX_LOSS,
        aux_kl_direction=st.KL_DIRECTION,
        aux_ignore_mode=st.IGNORE_MODE,
        cpp_on=st.CPP_ON,
        rmi_weight=st.RMI.WEIGHT,
        rmi_lambda=st.RMI.LAMBDA,
        rmi_radius=st.RMI.RADIUS,
        rmi_pool=st.RMI.POOL,
        rmi_pool_stride=st.RMI.POOL_STRIDE,
        rmi_class_reduction=st.RMI.CLASS_REDUCTION,
        cpp_weight=dict(zip((16, 8, 4), st.AUX_LOSS_WEIGHTS)),
        gamma=st.CE_WEIGHT,
        per_scale_loss=st.PER_SCALE_LOSS,
        ignore_value=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        test_scales=tuple(t.SCALES),
        test_flip=t.FLIP,
        test_merge=t.MERGE,
        test_crop_size=tuple(t.CROP_SIZE) if slide else None,
        test_stride=tuple(t.STRIDE) if slide else None,
    )


@META_ARCH_REGISTRY.register()
class SeeThroughNetSegmentor(nn.Module):
    """``MODEL.META_ARCHITECTURE: SeeThroughNetSegmentor``.

    Inputs: detectron2 dicts with ``image`` (uint8 CHW, ``INPUT.FORMAT``) and, in training,
    ``sem_seg`` (int64 HW, ``MODEL.SEM_SEG_HEAD.IGNORE_VALUE`` for ignored pixels).
    Training output: the dict of named loss terms. Inference output: ``[{"sem_seg": (K, H, W)}]``
    logits at each image's original ``height`` x ``width``.
    """

    @configurable
    def __init__(
        self,
        *,
        net: SeeThroughNet,
        pixel_mean,
        pixel_std,
        ignore_value: int,
        check_finite_loss: bool,
    ):
        super().__init__()
        self.net = net
        self.ignore_value = ignore_value
        self.check_finite_loss = check_finite_loss
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        return {
            "net": build_seethroughnet_from_cfg(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "check_finite_loss": cfg.SOLVER.CHECK_FINITE_LOSS,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        if self.training:
            div = self.net.size_divisibility
            images = normalized_images(batched_inputs, self.pixel_mean, self.pixel_std, div)
            labels = padded_labels(batched_inputs, div, self.ignore_value, self.device)
            losses = self.net.losses(self.net(images.tensor), labels)
            if self.check_finite_loss:
                check_finite_losses(losses)
            return losses
        images = normalized_images(
            batched_inputs, self.pixel_mean, self.pixel_std, self.net.encoder.size_divisibility
        )
        logits = self.net(images.tensor)
        return semantic_outputs(logits, batched_inputs, images.image_sizes)
