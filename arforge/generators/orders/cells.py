"""Next-cell order (xAR): the grid is split into ``(ch, cw)`` cells visited in raster order over cells;
attention is block-causal across cells and bidirectional inside a cell.

Unlike next-block prediction there is no shift: in training every token is fed (noised, each cell
at its own noise level) and the output at a token regresses that token's own velocity, so the model
is the flow network. At sampling, cell ``k`` is integrated from noise while the clean cells ``< k``
sit in the KV cache (cell ``k - 1`` is written, clean, in the first pass of cell ``k``).
"""

from __future__ import annotations

import torch

from arforge.generators.orders.base import DecodeStep, TrainingArrangement
from arforge.generators.orders.grouped import GroupedOrder, prefix_groups


class Cells(GroupedOrder):
    """``Cells(grid_hw, cell_hw)``; ``cell_hw`` must tile the grid (xAR: 8x8 cells of a 16x16 latent)."""

    def __init__(self, grid_hw: tuple[int, int], cell_hw: tuple[int, int]):
        super().__init__(grid_hw)
        ch, cw = (int(s) for s in cell_hw)
        h, w = self.grid_hw
        if ch < 1 or cw < 1 or h % ch or w % cw:
            raise ValueError(f"cells {ch}x{cw} must tile the {h}x{w} grid")
        self.cell_hw = (ch, cw)

    def token_groups(self) -> torch.Tensor:
        rows, cols = self.grid_coords()
        ch, cw = self.cell_hw
        return (rows // ch) * (self.grid_hw[1] // cw) + cols // cw

    def training_arrangement(self, num_prefix: int = 0) -> TrainingArrangement:
        """Every token fed at slot ``P + i`` and read back at the same slot."""
        n = self.num_tokens
        idx = torch.arange(n)
        return TrainingArrangement(input_idx_T=idx, target_slot_N=idx + num_prefix,
                                   mask_LL=self.training_mask(prefix_groups(num_prefix), idx))

    def decode_schedule(self) -> list[DecodeStep]:
        """Step ``k`` feeds cell ``k - 1`` (clean) with cell ``k`` (being integrated) and emits cell ``k``."""
        members = self.group_members()
        steps = []
        for k, cell in enumerate(members):
            fed = cell if k == 0 else torch.cat([members[k - 1], cell])
            steps.append(DecodeStep(feed_T=fed, emit_E=cell, source_E=torch.arange(len(fed) - len(cell), len(fed))))
        return steps
