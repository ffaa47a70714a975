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

from ...nn.options import (
    ActivationCheckpointing,
    DecoderOptions,
    EncoderOptions,
    InferenceOptions,
    LossOptions,
    OCROptions,
    TrainingScales,
)
from ...nn.seethroughnet import SeeThroughNet
from ..common import check_finite_losses, normalized_images, padded_labels, semantic_outputs

__all__ = ["SeeThroughNetSegmentor", "build_seethroughnet_from_cfg"]


def build_seethroughnet_from_cfg(cfg) -> SeeThroughNet:
    """The plain model; each option group reads its own config keys (``from_cfg``,
    :mod:`seethroughnet.nn.options`)."""
    return SeeThroughNet(
        num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        encoder=EncoderOptions.from_cfg(cfg),
        decoder=DecoderOptions.from_cfg(cfg),
        ocr=OCROptions.from_cfg(cfg),
        scales=TrainingScales.from_cfg(cfg),
        loss=LossOptions.from_cfg(cfg),
        inference=InferenceOptions.from_cfg(cfg),
        head_norm=cfg.MODEL.SEE_THROUGH.HEAD_NORM,
        checkpointing=ActivationCheckpointing.from_cfg(cfg),
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
