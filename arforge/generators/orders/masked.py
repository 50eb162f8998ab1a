"""``MaskedRandomOrder``: MAR's masked random-order generation (MaskGIT-style cosine unmasking).

Training: every row gets a random permutation (its generation order) and one masking ratio per
batch, drawn from a normal(1, 0.25) truncated to ``[mask_ratio_min, 1]``; the first
``ceil(N * ratio)`` positions of each row's order are masked and predicted. Sampling over
``num_iter`` steps: after step ``s`` the first ``mask_len(s) = floor(N cos(pi/2 (s+1)/num_iter))``
positions of the order stay masked (at least one token is predicted per step, all by the last).
All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch

from arforge.generators.orders.base import DecodeStep, Order, TrainingArrangement


class MaskedRandomOrder(Order):
    """Random order over ``grid_hw`` tokens with MAR's masking schedules.

    As an :class:`Order`: training feeds every token (the model replaces the masked ones by its mask
    token) and predicts each token at its own slot with bidirectional attention; the decode schedule
    has ``num_iter`` steps whose ``emit_E`` are *ranks* in each row's random order
    (:meth:`sample_orders` turns them into grid indices per row), following :meth:`unmask_schedule`.
    """

    name = "masked"

    def __init__(self, grid_hw: tuple[int, int], mask_ratio_min: float = 0.7, ratio_std: float = 0.25, num_iter: int = 64):
        super().__init__(grid_hw)
        if not 0.0 < mask_ratio_min <= 1.0:
            raise ValueError(f"mask_ratio_min must lie in (0, 1], got {mask_ratio_min}")
        self.mask_ratio_min, self.ratio_std = mask_ratio_min, ratio_std
        self.num_iter = num_iter

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        n, L = self.num_tokens, num_prefix + self.num_tokens
        return TrainingArrangement(input_idx_T=torch.arange(n), target_slot_N=torch.arange(n) + num_prefix,
                                   mask_LL=torch.ones(L, L, dtype=torch.bool))

    def decode_schedule(self) -> list[DecodeStep]:
        """``num_iter`` steps; step ``s`` emits the ranks ``N - mask_len(s-1) .. N - mask_len(s) - 1``
        of each row's order, reading each from its own (bidirectional) slot."""
        steps, known = [], 0
        for length in self.unmask_schedule(min(self.num_iter, self.num_tokens)):
            ranks = torch.arange(known, self.num_tokens - length)
            steps.append(DecodeStep(feed_T=torch.arange(known), emit_E=ranks, source_E=ranks))
            known = self.num_tokens - length
        return steps

    def sample_orders(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """One random permutation of ``0..N-1`` per row: int64 ``(B, N)``."""
        keys = torch.rand(batch, self.num_tokens, generator=generator, device=device)
        return keys.argsort(dim=1)

    def sample_mask_ratio(self, generator: torch.Generator | None = None) -> float:
        """Normal(1, ratio_std) truncated to ``[mask_ratio_min, 1]`` (inverse-CDF sampling)."""
        normal = torch.distributions.Normal(0.0, 1.0)
        lo = normal.cdf(torch.tensor((self.mask_ratio_min - 1.0) / self.ratio_std))
        hi = normal.cdf(torch.tensor(0.0))
        u = lo + (hi - lo) * torch.rand((), generator=generator)
        return float(1.0 + self.ratio_std * torch.special.ndtri(u))

    @staticmethod
    def mask_first(orders_BN: torch.Tensor, count: int) -> torch.Tensor:
        """Float ``(B, N)`` mask with 1 at the first ``count`` positions of each row's order."""
        mask = torch.zeros(orders_BN.shape, device=orders_BN.device)
        return mask.scatter_(1, orders_BN[:, :count], 1.0)

    def training_mask(self, orders_BN: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MAR's ``random_masking``: ``ceil(N * ratio)`` masked tokens per row (1 = masked, predicted)."""
        ratio = self.sample_mask_ratio(generator)
        return self.mask_first(orders_BN, int(math.ceil(self.num_tokens * ratio)))

    def unmask_schedule(self, num_iter: int) -> list[int]:
        """Tokens still masked after each of the ``num_iter`` sampling steps (strictly decreasing, ends at 0)."""
        if num_iter < 1:
            raise ValueError(f"num_iter must be >= 1, got {num_iter}")
        N, remaining, lengths = self.num_tokens, self.num_tokens, []
        for step in range(num_iter):
            if step == num_iter - 1:
                length = 0
            else:
                length = int(math.floor(N * math.cos(math.pi / 2.0 * (step + 1) / num_iter)))
                length = max(1, min(remaining - 1, length))
            lengths.append(length)
            remaining = length
        return lengths
