"""Step annealing for continuous-token heads (DiSA): fewer head integration steps for tokens that
come later, when most of the image is already fixed. Shared by the MAR, FlowAR, raster-flow and xAR
samplers."""

from __future__ import annotations


def check_step_annealing(head_steps: int | None, head_steps_end: int | None, power: float) -> None:
    """Validate a sampler's DiSA options (``None`` steps = the head's configured count)."""
    if (head_steps is not None and head_steps < 1) or (head_steps_end is not None and head_steps_end < 1):
        raise ValueError("head_steps and head_steps_end must be >= 1")
    if power <= 0:
        raise ValueError(f"head_steps_power must be > 0, got {power}")


def annealed_steps(progress: float, start_steps: int, end_steps: int, power: float = 1.0) -> int:
    """DiSA step annealing: ``start_steps`` for the first tokens, falling to ``end_steps`` once the
    image is complete (``progress`` = fraction of tokens already generated, in ``[0, 1]``), along
    ``end + (start - end) * (1 - progress) ** power`` (``power = 1``: linear; larger: the steps drop
    faster, e.g. ``power = 3`` averages ``end + (start - end) / 4`` steps over a uniform progress)."""
    progress = min(max(progress, 0.0), 1.0)
    if power <= 0:
        raise ValueError(f"annealing power must be > 0, got {power}")
    return max(1, int(round(end_steps + (start_steps - end_steps) * (1.0 - progress) ** power)))
