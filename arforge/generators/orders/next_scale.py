"""Next-scale order (VAR): token maps of growing size, one forward pass per scale.

The sequence is the concatenation of ``K`` token maps of sides ``patch_nums = (p_1, ..., p_K)``,
each flattened row-major: ``L = sum p_k^2`` positions, scale ``k`` at
``[sum_{j<k} p_j^2, sum_{j<=k} p_j^2)``. Attention is **block-causal**: every position sees all
positions of its own and earlier scales. Scale ``k``'s inputs are derived from scales ``< k``
(VAR: the cumulative reconstruction, downsampled to ``p_k``; the first scale gets the start token),
so the whole scale is predicted in one pass: ``K`` decode steps instead of ``L``.
"""

from __future__ import annotations

import itertools

import torch

from arforge.generators.orders.base import DecodeStep, Order, TrainingArrangement


class NextScale(Order):
    """``NextScale(patch_nums)``; the grid is the last (finest) token map."""

    name = "next_scale"

    def __init__(self, patch_nums: list[int] | tuple[int, ...]):
        patch_nums = tuple(int(p) for p in patch_nums)
        if not patch_nums or list(patch_nums) != sorted(set(patch_nums)) or patch_nums[0] < 1:
            raise ValueError(f"patch_nums must be strictly increasing positive sizes, got {list(patch_nums)}")
        super().__init__((patch_nums[-1], patch_nums[-1]))
        self.patch_nums = patch_nums
        sizes = [p * p for p in patch_nums]
        self.scale_sizes = tuple(sizes)
        self.scale_starts = tuple(itertools.accumulate([0, *sizes[:-1]]))

    @property
    def num_tokens(self) -> int:
        """``L = sum p_k^2`` (all scales), not just the finest grid."""
        return sum(self.scale_sizes)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    def scale_slice(self, si: int) -> slice:
        return slice(self.scale_starts[si], self.scale_starts[si] + self.scale_sizes[si])

    def level_L(self) -> torch.Tensor:
        """Scale index of every position, int64 ``(L,)``."""
        return torch.cat([torch.full((n,), si, dtype=torch.long) for si, n in enumerate(self.scale_sizes)])

    def block_causal_mask(self) -> torch.Tensor:
        """Boolean ``(L, L)``: query ``i`` may attend key ``j`` iff ``level[j] <= level[i]``."""
        level = self.level_L()
        return level[None, :] <= level[:, None]

    def training_arrangement(self, num_prefix: int = 0) -> TrainingArrangement:
        """Position ``i`` (fed with scale ``level[i]``'s input) predicts token ``i``; block-causal mask.
        The start token occupies the first scale's positions, so ``num_prefix`` must be 0."""
        if num_prefix != 0:
            raise ValueError("next-scale order puts the class start token at the first scale's positions: num_prefix must be 0")
        L = self.num_tokens
        return TrainingArrangement(input_idx_T=torch.arange(L), target_slot_N=torch.arange(L), mask_LL=self.block_causal_mask())

    def decode_schedule(self) -> list[DecodeStep]:
        steps = []
        for si in range(self.num_scales):
            idx = torch.arange(self.scale_starts[si], self.scale_starts[si] + self.scale_sizes[si])
            steps.append(DecodeStep(feed_T=idx, emit_E=idx, source_E=torch.arange(len(idx))))
        return steps

    def num_decode_steps(self) -> int:
        return self.num_scales
