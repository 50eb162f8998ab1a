"""Next-block order (NBP): a block of tokens per step, bidirectional inside a block, causal across.

Blocks are ``(bh, bw)`` tiles of the grid, visited in raster order over tiles; a row block is
``(1, w)``, ``k`` rows ``(k, w)``, the whole grid ``(h, w)``, a 2D tile anything in between (NBP
itself only tried rows). Targets are **block-shifted**: token ``j`` of block ``k + 1`` (``j`` in
row-major order inside the tile) is predicted by the output at token ``j`` of block ``k``; block 0
is predicted by the last ``b`` prefix slots (the condition's last token plus ``b - 1`` learned start
tokens, NBP's "block of BOS tokens"), so decoding takes ``N / b`` passes. ``NextBlock(grid, (1, 1))``
is exactly :class:`~arforge.generators.orders.Raster` (the oracle in the tests).
"""

from __future__ import annotations

import torch

from arforge.generators.orders.base import DecodeStep, TrainingArrangement
from arforge.generators.orders.grouped import GroupedOrder, prefix_groups


class NextBlock(GroupedOrder):
    """``NextBlock(grid_hw, block_hw)``; ``block_hw`` must tile the grid."""

    def __init__(self, grid_hw: tuple[int, int], block_hw: tuple[int, int]):
        super().__init__(grid_hw)
        bh, bw = (int(s) for s in block_hw)
        h, w = self.grid_hw
        if bh < 1 or bw < 1 or h % bh or w % bw:
            raise ValueError(f"block {bh}x{bw} must tile the {h}x{w} grid (e.g. a row block is 1x{w})")
        self.block_hw = (bh, bw)

    @property
    def block_size(self) -> int:
        """Tokens per block ``b``."""
        return self.block_hw[0] * self.block_hw[1]

    def token_groups(self) -> torch.Tensor:
        rows, cols = self.grid_coords()
        bh, bw = self.block_hw
        return (rows // bh) * (self.grid_hw[1] // bw) + cols // bw

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        """Feeds every block but the last; ``num_prefix`` (>= ``b``) counts the start tokens."""
        b = self.block_size
        if num_prefix < b:
            raise ValueError(f"a {self.block_hw} next-block order needs >= {b} prefix slots (condition + {b - 1} start tokens)")
        members = self.group_members()
        input_idx = torch.cat(members[:-1]).sort().values if len(members) > 1 else torch.zeros(0, dtype=torch.long)
        slot_of_input = torch.full((self.num_tokens,), -1, dtype=torch.long)
        slot_of_input[input_idx] = num_prefix + torch.arange(len(input_idx))
        target = torch.empty(self.num_tokens, dtype=torch.long)
        target[members[0]] = torch.arange(num_prefix - b, num_prefix)
        for k in range(1, len(members)):
            target[members[k]] = slot_of_input[members[k - 1]]
        mask = self.training_mask(prefix_groups(num_prefix, b), input_idx)
        return TrainingArrangement(input_idx_T=input_idx, target_slot_N=target, mask_LL=mask)

    def decode_schedule(self) -> list[DecodeStep]:
        """Prefill emits block 0 from the last ``b`` prefix outputs (``source`` ``-b..-1``); pass
        ``k`` feeds block ``k - 1`` and emits block ``k`` (output ``j`` -> token ``j``)."""
        members = self.group_members()
        b = self.block_size
        empty = torch.zeros(0, dtype=torch.long)
        steps = [DecodeStep(feed_T=empty, emit_E=members[0], source_E=torch.arange(-b, 0))]
        for k in range(1, len(members)):
            steps.append(DecodeStep(feed_T=members[k - 1], emit_E=members[k], source_E=torch.arange(b)))
        return steps
