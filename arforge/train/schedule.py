"""Learning-rate schedules as explicit config: linear warm-up, then cosine / linear decay or constant.

The schedule is a multiplier of the peak ``lr`` for optimizer step ``step`` (0-based, the step
about to be taken), wrapped in a ``torch.optim.lr_scheduler.LambdaLR`` that the trainer steps once
per optimizer step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LRSchedule:
    """``factor(step)`` in ``[min_lr_ratio, 1]`` for ``step`` in ``[0, total_steps)``.

    Warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (so the first step
    already has a non-zero rate and step ``warmup_steps - 1`` reaches the peak). After warm-up, with
    ``progress = (step - warmup_steps) / max(1, total_steps - warmup_steps - 1)`` in ``[0, 1]``:
    ``cosine`` -> ``m + (1 - m) * (1 + cos(pi * progress)) / 2``; ``linear`` -> ``m + (1 - m) *
    (1 - progress)``; ``constant`` -> ``1``; where ``m = min_lr_ratio``. The last step uses ``m``.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "linear", "constant"):
            raise ValueError(f"unknown schedule '{self.kind}'; use cosine, linear or constant")
        if self.total_steps < 1 or self.warmup_steps < 0:
            raise ValueError("total_steps must be >= 1 and warmup_steps >= 0")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        decay_steps = max(1, self.total_steps - self.warmup_steps - 1)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        m = self.min_lr_ratio
        if self.kind == "cosine":
            return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return m + (1.0 - m) * (1.0 - progress)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: LRSchedule) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying ``schedule`` to every parameter group (call ``.step()`` after each optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=schedule)
