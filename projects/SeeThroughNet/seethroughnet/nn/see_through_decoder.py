"""SeeThrough decoder (SeeThroughNet, Section 3.2, Figure 4, Eq. 3).

Structure, from coarse to fine over the HRNetV2 branches at strides 32, 16, 8, 4:

* **Coarse semantic heads** (paper: "(3x3 conv) -> (BN) -> (ReLU) -> (1x1 conv)"): one per scale,
  ``X_s = head_s(F_s)``, ``K`` channels, at the resolution of the branch ``F_s``.
* **Multi-scale attention masks** ``alpha_s`` (paper: "trainable relative attention masks between
  adjacent-scale semantic maps", Figure 4 blue box), one per pair of adjacent scales. The paper
  does not spell out the generator; we follow its description ("generated from the same-scale
  features and coarse segmentation") with a generator of this project's own:
  ``alpha_s = sigmoid(conv1x1_bias(ReLU(BN(conv3x3_nobias(concat(F_s, X_s))))))``, one channel,
  computed at the *coarser* scale ``s`` of the pair (the map that gets up-sampled). It is **not**
  Tao et al.'s attention head (:class:`~.scale_attention.ScaleAttentionHead`, which [41]'s
  ``network/utils.py:make_attn_head`` defines with two 3x3 conv-BN-ReLU layers and a 1x1 conv
  without bias): it has one 3x3 layer, as [41]'s head with its ``--mscale_no3x3`` option
  (``MODEL.MSCALE_INNER_3x3 = False``), and its 1x1 conv has a bias, which [41]'s has in neither
  form. Only the hidden width (256, ``attention_channels``) is taken from [41]
  (``MODEL.SEGATTN_BOT_CH``).
* **Sequential aggregation** (Eq. 3). The paper writes
  ``X' = mu(alpha * X'_s) + (1 - mu(alpha)) * X'_{s+1}`` with ``mu`` bilinear up-sampling
  "applied to the smaller map". Our reading: index ``s`` is the smaller (coarser) map, ``s+1`` the
  next finer one, the mask belongs to the coarser map (it is up-sampled together with it), and the
  recursion starts from the coarsest coarse map. With strides instead of indices::

      X'_32 = X_32
      X'_16 = up(alpha_32 * X'_32) + (1 - up(alpha_32)) * X_16
      X'_8  = up(alpha_16 * X'_16) + (1 - up(alpha_16)) * X_8
      X'_4  = up(alpha_8  * X'_8 ) + (1 - up(alpha_8 )) * X_4          (= X', the final map)

  i.e. exactly Tao et al.'s two-scale rule (``alpha`` weighs the up-sampled lower-resolution
  prediction, ``1 - alpha`` the higher-resolution one) applied between feature scales. ``up``
  multiplies *before* up-sampling (``up(alpha * X')``, not ``up(alpha) * up(X')``), as written.
* ``use_scale_attention=False`` (ablation, Table 4): no masks; the maps are summed after
  up-sampling, ``X'_s = up(X'_{2s}) + X_s``.

Outputs (all logits, ``K`` channels): the coarse maps ``coarse_{32,16,8,4}``, the aggregated maps
``agg_{16,8,4}``, the masks ``attn_{32,16,8}`` (when used), and ``soft_regions`` (= ``agg_4``, the
soft object regions the OCR head consumes). The CPP auxiliary losses of Eq. 6 go on
``coarse_{16,8,4}`` (default) or ``agg_{16,8,4}`` (``LossOptions(cpp_on=...)``): under the
default no loss term acts on ``soft_regions``, ``agg_{16,8}``, ``coarse_32`` or the masks other
than through the OCR head (docs/seethroughnet_model.md, "Eq. 6: which maps carry the CPP losses").
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from .layers import ConvNormAct, resize

__all__ = ["SeeThroughDecoder", "aggregate_coarse_maps"]

_SCALES = (("res5", 32), ("res4", 16), ("res3", 8), ("res2", 4))


def aggregate_coarse_maps(
    coarse: Sequence[torch.Tensor],
    alphas: Optional[Sequence[torch.Tensor]] = None,
    align_corners: bool = False,
) -> List[torch.Tensor]:
    """Eq. 3, sequentially from the coarsest map.

    Args:
        coarse: coarse logits ordered coarse -> fine, e.g. ``[X_32, X_16, X_8, X_4]``.
        alphas: masks for every map but the finest, ``[alpha_32, alpha_16, alpha_8]``
            (``(N, 1, h_s, w_s)`` at the scale of the coarser map of each pair); ``None`` for the
            ablation without attention (sum after up-sampling).

    Returns:
        ``[X'_16, X'_8, X'_4]``: the aggregated maps at every scale but the coarsest.
    """
    if alphas is not None and len(alphas) != len(coarse) - 1:
        raise ValueError(f"need {len(coarse) - 1} attention masks, got {len(alphas)}")
    prev = coarse[0]
    out = []
    for i, x in enumerate(coarse[1:]):
        size = x.shape[-2:]
        if alphas is None:
            prev = resize(prev, size, align_corners) + x
        else:
            a = alphas[i]
            prev = (
                resize(a * prev, size, align_corners) + (1.0 - resize(a, size, align_corners)) * x
            )
        out.append(prev)
    return out


class SeeThroughDecoder(nn.Module):
    """Coarse heads + multi-scale attention + sequential aggregation (Eq. 3).

    Args:
        in_channels: branch channels ``{"res2": C2, "res3": C3, "res4": C4, "res5": C5}``
            (``HRNetV2Encoder.channels``).
        num_classes: ``K``.
        head_channels: hidden width of every coarse head's 3x3 conv; ``None`` keeps the branch
            width (as HRNet-OCR's auxiliary head does).
        attention_channels: hidden width of every attention-mask generator's single 3x3 conv
            (paper silent; 256, the hidden width of Tao et al.'s attention head).
        use_scale_attention: Eq. 3 with masks (True) or plain sum after up-sampling (False,
            ablation of Table 4).
        norm: ``"BN"`` or ``"SyncBN"`` for the heads.
        align_corners: of the bilinear up-sampling.
    """

    def __init__(
        self,
        in_channels: Mapping[str, int],
        num_classes: int = 19,
        head_channels: Optional[int] = None,
        attention_channels: int = 256,
        use_scale_attention: bool = True,
        norm: str = "BN",
        align_corners: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.use_scale_attention = use_scale_attention
        self.align_corners = align_corners
        self.scales = [s for _, s in _SCALES]
        self.in_features = [n for n, _ in _SCALES]
        self.coarse_heads = nn.ModuleDict()
        for name, _ in _SCALES:
            c = in_channels[name]
            hidden = c if head_channels is None else head_channels
            self.coarse_heads[name] = nn.Sequential(
                ConvNormAct(c, hidden, 3, norm=norm), nn.Conv2d(hidden, num_classes, 1)
            )
        self.attention_heads = nn.ModuleDict()
        # the mask generators: one 3x3 conv-BN-ReLU, a biased 1x1 conv, sigmoid (not Tao et al.'s
        # two-3x3 head; see the module docstring)
        if use_scale_attention:
            for name, _ in _SCALES[:-1]:
                c = in_channels[name] + num_classes
                self.attention_heads[name] = nn.Sequential(
                    ConvNormAct(c, attention_channels, 3, norm=norm),
                    nn.Conv2d(attention_channels, 1, 1),
                    nn.Sigmoid(),
                )

    def forward(self, features: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``features``: ``{"res2": (N,C2,H/4,W/4), ..., "res5": (N,C5,H/32,W/32)}``.

        Returns ``coarse_{32,16,8,4}``, ``agg_{16,8,4}``, ``soft_regions`` and, with attention,
        ``attn_{32,16,8}``.
        """
        out: Dict[str, torch.Tensor] = {}
        coarse = []
        for name, s in _SCALES:
            x = self.coarse_heads[name](features[name])
            out[f"coarse_{s}"] = x
            coarse.append(x)
        alphas = None
        if self.use_scale_attention:
            alphas = []
            for (name, s), x in zip(_SCALES[:-1], coarse[:-1]):
                a = self.attention_heads[name](torch.cat([features[name], x], dim=1))
                out[f"attn_{s}"] = a
                alphas.append(a)
        aggregated = aggregate_coarse_maps(coarse, alphas, self.align_corners)
        for (_, s), x in zip(_SCALES[1:], aggregated):
            out[f"agg_{s}"] = x
        out["soft_regions"] = aggregated[-1]
        return out
