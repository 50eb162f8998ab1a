"""Next-block order (NBP): a block of tokens per step, bidirectional inside a block, causal across.

Blocks are ``(bh, bw)`` tiles of an image grid (``(bt, bh, bw)`` of a video grid), visited in
raster order over tiles; a row block is ``(1, w)``, ``k`` rows ``(k, w)``, the whole grid ``(h, w)``,
a frame ``(1, h, w)``, a 2D/3D tile anything in between (NBP itself only tried rows). Targets are **block-shifted**: token ``j`` of block ``k + 1`` (``j`` in
row-major order inside the tile) is predicted by the output at token ``j`` of block ``k``; block 0
is predicted by the last ``b`` prefix slots (the condition's last token plus ``b - 1`` learned start
tokens, NBP's "block of BOS tokens"), so decoding takes ``N / b`` passes. ``NextBlock(grid, (1, 1))``
is exactly :class:`~arforge.generators.orders.Raster` (the oracle in the tests).
"""

from __future__ import annotations

import math

import torch

from arforge.generators.orders.base import DecodeStep, TrainingArrangement
from arforge.generators.orders.grouped import GroupedOrder, prefix_groups


def tile_groups(order, tile: tuple[int, ...]) -> torch.Tensor:
    """Index of the tile holding each token, tiles of shape ``tile`` visited in raster order."""
    group = torch.zeros(order.num_tokens, dtype=torch.long)
    for coord, size, side in zip(order.grid_coords(), order.grid_shape, tile):
        group = group * (size // side) + coord // side
    return group


def check_tile(grid: tuple[int, ...], tile: tuple[int, ...], what: str) -> tuple[int, ...]:
    tile = tuple(int(s) for s in tile)
    if len(tile) != len(grid) or min(tile) < 1 or any(g % s for g, s in zip(grid, tile)):
        shape = "x".join(map(str, grid))
        raise ValueError(f"{what} {'x'.join(map(str, tile))} must tile the {shape} grid with one side per grid "
                         f"dimension (e.g. a row block is 1x{grid[-1]}{', a frame block 1x' + 'x'.join(map(str, grid[1:])) if len(grid) == 3 else ''})")
    return tile


class NextBlock(GroupedOrder):
    """``NextBlock(grid_shape, block_shape)``; ``block_shape`` (one side per grid dimension) must tile the grid."""

    def __init__(self, grid_shape: tuple[int, ...], block_shape: tuple[int, ...]):
        super().__init__(grid_shape)
        self.block_shape = check_tile(self.grid_shape, block_shape, "block")
        self.block_hw = self.block_shape[-2:]

    @property
    def block_size(self) -> int:
        """Tokens per block ``b``."""
        return math.prod(self.block_shape)

    def token_groups(self) -> torch.Tensor:
        return tile_groups(self, self.block_shape)

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        """Feeds every block but the last; ``num_prefix`` (>= ``b``) counts the start tokens."""
        b = self.block_size
        if num_prefix < b:
            raise ValueError(f"a {self.block_shape} next-block order needs >= {b} prefix slots (condition + {b - 1} start tokens)")
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
