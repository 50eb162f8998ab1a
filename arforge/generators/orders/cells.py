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
from arforge.generators.orders.next_block import check_tile, tile_groups


class Cells(GroupedOrder):
    """``Cells(grid_shape, cell_shape)``; the cells must tile the grid (xAR: 8x8 cells of a 16x16 latent)."""

    name = "cells"

    def __init__(self, grid_shape: tuple[int, ...], cell_shape: tuple[int, ...]):
        super().__init__(grid_shape)
        self.cell_shape = check_tile(self.grid_shape, cell_shape, "cells")
        self.cell_hw = self.cell_shape[-2:]

    def token_groups(self) -> torch.Tensor:
        return tile_groups(self, self.cell_shape)

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
