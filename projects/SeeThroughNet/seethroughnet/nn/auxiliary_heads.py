"""Auxiliary heads as a plug-in for any segmentation model (SeeThroughNet, CVPR 2022, Sec. 4.4 /
Table 1: "four auxiliary heads" on the four stage outputs of the backbone, trained with CPP
targets).

Each head is ``3x3 conv -> norm -> ReLU -> 1x1 conv`` to ``K`` classes (``K + 1`` for
``ignore_mode="ignore_channel"``), applied on one named backbone feature at that feature's stride;
``dropout > 0`` puts a ``Dropout2d`` before the 1x1 conv (MMSegmentation's ``FCNHead`` auxiliary
head: ``num_convs=1``, ``dropout_ratio=0.1``; default 0, no dropout). Initialisation as
MMSegmentation's FCNHead (:mod:`seethroughnet.nn.weight_init`): Kaiming fan-out for the 3x3 conv,
``N(0, 0.01)`` for the classifier. Its loss is one of
:data:`seethroughnet.nn.aux_losses.AUX_LOSS_KINDS`:

* ``"upsample_ce"``: logits bilinearly up-sampled to the label size + CE (the usual auxiliary head,
  the paper's baseline);
* ``"cpp_kl"``: CPP targets at the head's stride + KL (Eqs. 1-2);
* ``"nearest_ce"``: nearest-neighbour down-sampled labels + CE.

The heads cost nothing at inference: in ``eval()`` mode :meth:`AuxiliaryHeads.forward` returns an
empty dict without running any layer (they are training-only, like MMSegmentation's auxiliary
heads).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import nn

from .aux_losses import AUX_LOSS_KINDS, AuxiliaryLoss
from .layers import norm_layer
from .weight_init import init_classifier_, init_conv_module_

__all__ = ["AuxiliaryHeads", "aux_head"]


def aux_head(
    in_channels: int,
    hidden_channels: int,
    out_channels: int,
    norm: str = "BN",
    dropout: float = 0.0,
) -> nn.Sequential:
    """``3x3 conv (no bias) -> norm -> ReLU [-> Dropout2d(dropout) if dropout > 0] -> 1x1 conv``,
    initialised as MMSegmentation's FCNHead (Kaiming fan-out conv, ``N(0, 0.01)`` classifier)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"auxiliary head dropout {dropout}; valid: 0 <= dropout < 1")
    layers = [
        nn.Conv2d(in_channels, hidden_channels, 3, padding=1, bias=False),
        norm_layer(norm, hidden_channels),
        nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    layers.append(nn.Conv2d(hidden_channels, out_channels, 1))
    head = nn.Sequential(*layers)
    init_conv_module_(head[0], head[1])
    init_classifier_(head[-1])
    return head


class AuxiliaryHeads(nn.Module):
    """``N`` training-only auxiliary heads on named features.

    Args:
        in_channels: ``{feature name: channels}`` of (at least) the features in ``features``.
        num_classes: ``K``.
        features: the feature names that get a head, e.g. ``["res2", "res3", "res4", "res5"]``
            (an empty list: no head, :meth:`forward` returns ``{}``).
        loss_kind: one of :data:`AUX_LOSS_KINDS`.
        weights: one loss weight per head, or one number for all (default 1.0 each).
        hidden_channels: width of the 3x3 conv (MMSegmentation's FCN auxiliary head: 256).
        ignore_value, kl_direction, ignore_mode, ce_average: passed to :class:`AuxiliaryLoss`
            (``ce_average``: ``"all_pixels"`` = MMSegmentation's ``avg_non_ignore=False``).
        norm: ``"BN"`` | ``"SyncBN"`` | ``"GN"``; dropout: ``Dropout2d`` rate before the classifier
            (0: none; MMSegmentation's FCNHead: 0.1).

    ``forward(features, labels)`` -> ``{"loss_aux_<feature>": weight * loss}`` in training mode,
    ``{}`` in eval mode.
    """

    def __init__(
        self,
        in_channels: Mapping[str, int],
        num_classes: int,
        features: Sequence[str],
        loss_kind: str = "cpp_kl",
        weights=1.0,
        hidden_channels: int = 256,
        ignore_value: int = 255,
        kl_direction: str = "target_to_prediction",
        ignore_mode: str = "renormalize",
        norm: str = "BN",
        dropout: float = 0.0,
        ce_average: str = "non_ignored",
    ):
        super().__init__()
        if loss_kind not in AUX_LOSS_KINDS:
            raise ValueError(
                f"unknown auxiliary loss {loss_kind!r}; valid choices: {', '.join(AUX_LOSS_KINDS)}"
            )
        features = list(features)
        missing = [f for f in features if f not in in_channels]
        if missing:
            raise ValueError(
                f"auxiliary head features {missing} not among the backbone features "
                f"{sorted(in_channels)}"
            )
        if len(set(features)) != len(features):
            raise ValueError(f"auxiliary head features must be distinct, got {features}")
        if isinstance(weights, (int, float)):
            weights = [float(weights)] * len(features)
        weights = [float(w) for w in weights]
        if len(weights) != len(features):
            raise ValueError(
                f"{len(weights)} auxiliary loss weights for {len(features)} heads ({features})"
            )
        self.features = features
        self.weights = dict(zip(features, weights))
        self.loss_kind = loss_kind
        self.loss = AuxiliaryLoss(
            loss_kind,
            num_classes,
            ignore_value,
            kl_direction=kl_direction,
            ignore_mode=ignore_mode,
            ce_average=ce_average,
        )
        out = (
            num_classes + 1
            if ignore_mode == "ignore_channel" and loss_kind == "cpp_kl"
            else num_classes
        )
        self.heads = nn.ModuleDict(
            {f: aux_head(in_channels[f], hidden_channels, out, norm, dropout) for f in features}
        )

    def __len__(self) -> int:
        return len(self.features)

    def forward(
        self, features: Mapping[str, torch.Tensor], labels: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        if not self.training or not self.features:
            return {}
        if labels is None:
            raise ValueError("AuxiliaryHeads needs the labels in training mode")
        losses = {}
        for f in self.features:
            logits = self.heads[f](features[f])
            losses[f"loss_aux_{f}"] = self.weights[f] * self.loss(logits, labels)
        return losses
