"""The ``nar`` family: neighbour-order generation (NAR) on the raster generator's backbone.

The raster generator (:class:`~arforge.generators.raster.RasterGenerator`) driven by a
:class:`~arforge.generators.orders.Neighbor` order: tokens in waves of equal ``row + col``, each wave
in one forward pass (``h + w - 1`` passes), the proximity mask over raster-ordered inputs, and two
dimension-oriented heads: ``output`` predicts the right neighbour, ``output_below`` the neighbour
below; a token's logits average the heads that reach it. NAR puts one extra transformer block in
front of its below head; here both heads read the shared trunk output (a linear head each).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.orders import Neighbor, Order
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.pretrained import register_model


@dataclass
class NARConfig(RasterConfig):
    """:class:`RasterConfig` (class conditioning)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.condition != "class":
            raise ConfigError("nar supports class conditioning only (condition: class)")


def average_heads(logits_BEHV: torch.Tensor, use_EH: torch.Tensor) -> torch.Tensor:
    """Mean over the direction heads marked in ``use_EH`` (bool ``(E, H)``, >= 1 per row): ``(B, E, V)``."""
    w_EH = use_EH.to(logits_BEHV.dtype)
    return (logits_BEHV * w_EH[None, :, :, None]).sum(2) / w_EH.sum(1)[None, :, None]


@register_model
class NARGenerator(RasterGenerator):
    """Class-conditional neighbour-order generator with right/below heads."""

    config_class = NARConfig
    model_type = "nar"
    default_sampler = "ar"
    decode_causal = False

    def __init__(self, config: NARConfig):
        super().__init__(config)
        self.output_below = nn.Linear(config.backbone.dim, config.vocab_size, bias=False)
        nn.init.zeros_(self.output_below.weight)

    def build_order(self, config: NARConfig) -> Order:
        return Neighbor(config.grid_size)

    def head_logits(self, h_BTC: torch.Tensor) -> torch.Tensor:
        """Float32 ``(..., 2, V)``: right-neighbour and below-neighbour logits."""
        return torch.stack([self.output(h_BTC), self.output_below(h_BTC)], dim=-2).float()

    def read_out(self, h_BLC: torch.Tensor, arr) -> torch.Tensor:
        slots_NH = arr.head_slots_NH.to(h_BLC.device)
        use_NH = slots_NH >= 0
        right = self.output(h_BLC[:, slots_NH[:, 0].clamp_min(0)])
        below = self.output_below(h_BLC[:, slots_NH[:, 1].clamp_min(0)])
        return average_heads(torch.stack([right, below], dim=2).float(), use_NH)

    def select_logits(self, out: torch.Tensor, step) -> torch.Tensor:
        """Prefill ``(B, 2, V)``: both heads at the last prefix slot predict token ``(0, 0)``.
        Decode ``(B, T, 2, V)``: each emitted token averages the heads whose source row is ``>= 0``."""
        if out.dim() == 3:
            return out.mean(1, keepdim=True)
        src_EH = step.source_E.to(out.device)
        use_EH = src_EH >= 0
        gathered = torch.stack([out[:, src_EH[:, h].clamp_min(0), h] for h in range(out.shape[2])], dim=2)
        return average_heads(gathered, use_EH)
