"""Classifier-free guidance: combining conditional and unconditional logits with a scale schedule.

``guided = uncond + scale * (cond - uncond)``. The scale may depend on decoding progress
(``t`` in ``[0, 1]``: fraction of tokens already generated when the step starts):

* ``constant``: ``scale`` throughout;
* ``linear``: ramps from 1 at ``t = 0`` to ``scale`` at ``t = 1`` (VAR/MAR style);
* ``interval``: ``scale`` for ``t`` in ``[start, end)``, 1 (conditional logits alone) elsewhere
  (LlamaGen's ``cfg_interval`` is ``interval`` with ``start = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class CFGSchedule:
    scale: float = 1.0
    kind: Literal["constant", "linear", "interval"] = "constant"
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "interval"):
            raise ValueError(f"unknown CFG schedule '{self.kind}'; use constant, linear or interval")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(f"CFG interval must satisfy 0 <= start <= end <= 1, got [{self.start}, {self.end}]")

    @property
    def enabled(self) -> bool:
        """Whether an unconditional branch is needed at all."""
        return self.scale != 1.0

    def scale_at(self, progress: float) -> float:
        """Guidance scale at decoding progress ``progress`` in ``[0, 1]``."""
        if self.kind == "linear":
            return 1.0 + (self.scale - 1.0) * progress
        if self.kind == "interval":
            return self.scale if self.start <= progress < self.end else 1.0
        return self.scale

    def scales(self, progress: torch.Tensor) -> torch.Tensor:
        """:meth:`scale_at` element-wise for a float tensor of progress values."""
        progress = progress.float()
        if self.kind == "linear":
            return 1.0 + (self.scale - 1.0) * progress
        if self.kind == "interval":
            inside = (progress >= self.start) & (progress < self.end)
            return torch.where(inside, torch.full_like(progress, self.scale), torch.ones_like(progress))
        return torch.full_like(progress, self.scale)

    @staticmethod
    def combine(cond_logits: torch.Tensor, uncond_logits: torch.Tensor, scale: float) -> torch.Tensor:
        """``uncond + scale * (cond - uncond)`` (float32)."""
        cond_logits, uncond_logits = cond_logits.float(), uncond_logits.float()
        if scale == 1.0:
            return cond_logits
        return uncond_logits + (cond_logits - uncond_logits) * scale


def guided_window_logits(logits_2BTV: torch.Tensor, batch: int, cfg: CFGSchedule, positions_BT: torch.Tensor,
                         num_tokens: int) -> torch.Tensor:
    """CFG per token: the scale of the token at grid index ``i`` is ``cfg.scale_at(i / N)``, exactly
    what :class:`ARSampler` uses when it emits that token."""
    if not cfg.enabled:
        return logits_2BTV.float()
    cond, uncond = logits_2BTV[:batch].float(), logits_2BTV[batch:].float()
    scales = cfg.scales(positions_BT.to(cond.device).float() / num_tokens)[..., None]
    # scale 1 returns the conditional logits untouched, exactly as CFGSchedule.combine does
    return torch.where(scales == 1.0, cond, uncond + (cond - uncond) * scales)
