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
from arforge.generators.orders.grouped import GroupedOrder, members_of, prefix_groups


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

    name = "next_block"

    def __init__(self, grid_shape: tuple[int, ...], block_shape: tuple[int, ...], hybrid_start: bool = False):
        super().__init__(grid_shape)
        self.block_shape = check_tile(self.grid_shape, block_shape, "block")
        self.block_hw = self.block_shape[-2:]
        self.hybrid_start = bool(hybrid_start)

    @property
    def block_size(self) -> int:
        """Tokens per block ``b``."""
        return math.prod(self.block_shape)

    def token_groups(self) -> torch.Tensor:
        """Tile index; with a hybrid start, block 0's tokens are ``b`` single-token groups first."""
        group = tile_groups(self, self.block_shape)
        if not self.hybrid_start:
            return group
        b = self.block_size
        first = torch.nonzero(group == 0).flatten()
        group = group + (b - 1)
        group[first] = torch.arange(b)
        return group

    def prefix_group_ids(self, num_prefix: int) -> torch.Tensor:
        """Group ids of the ``num_prefix`` prefix slots in the training mask (image group ``g`` has
        id ``g + 1``): the condition slots are causal; the ``b - 1`` start tokens form the first
        group with the condition's last slot, or, with a hybrid start, join block 0's last token."""
        b = self.block_size
        if not self.hybrid_start:
            return prefix_groups(num_prefix, b)
        groups = prefix_groups(num_prefix - (b - 1), 1)
        return torch.cat([groups, torch.full((b - 1,), b, dtype=torch.long)])

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        """Feeds every block but the last; ``num_prefix`` (>= ``b``) counts the start tokens."""
        b = self.block_size
        if num_prefix < b:
            raise ValueError(f"a {self.block_shape} next-block order needs >= {b} prefix slots (condition + {b - 1} start tokens)")
        blocks = self.block_members()
        fed = blocks[:-1] if len(blocks) > 1 or not self.hybrid_start else [blocks[0][:-1]]  # one block: fed token by token
        input_idx = torch.cat(fed).sort().values if fed else torch.zeros(0, dtype=torch.long)
        slot_of_input = torch.full((self.num_tokens,), -1, dtype=torch.long)
        slot_of_input[input_idx] = num_prefix + torch.arange(len(input_idx))
        start_slots = torch.arange(num_prefix - b, num_prefix)  # condition's last slot + b - 1 start tokens
        target = torch.empty(self.num_tokens, dtype=torch.long)
        if self.hybrid_start:  # block 0 token by token; block 1 from block 0's last token + start tokens
            first = blocks[0]
            target[first] = torch.cat([start_slots[:1], slot_of_input[first[:-1]]])
            if len(blocks) > 1:
                target[blocks[1]] = torch.cat([slot_of_input[first[-1:]], start_slots[1:]])
            shifted_from = 2
        else:
            target[blocks[0]] = start_slots
            shifted_from = 1
        for k in range(shifted_from, len(blocks)):
            target[blocks[k]] = slot_of_input[blocks[k - 1]]
        mask = self.training_mask(self.prefix_group_ids(num_prefix), input_idx)
        return TrainingArrangement(input_idx_T=input_idx, target_slot_N=target, mask_LL=mask)

    def block_members(self) -> list[torch.Tensor]:
        """Raster indices of each block's tokens, ascending (row-major inside the tile)."""
        return members_of(tile_groups(self, self.block_shape))

    def decode_schedule(self) -> list[DecodeStep]:
        """Prefill emits block 0 from the last ``b`` prefix outputs (``source`` ``-b..-1``); pass
        ``k`` feeds block ``k - 1`` and emits block ``k`` (output ``j`` -> token ``j``).

        Hybrid start: prefill emits token 0 of block 0 from the condition's last slot, the next
        ``b - 1`` passes feed one token and emit the next, and the pass feeding block 0's last token
        emits block 1 from its output (source 0) and the start tokens' (sources ``1..b-1``; the
        generator appends the start tokens to that pass, see ``NBPGenerator.decode``)."""
        blocks = self.block_members()
        b = self.block_size
        empty = torch.zeros(0, dtype=torch.long)
        if not self.hybrid_start:
            steps = [DecodeStep(feed_T=empty, emit_E=blocks[0], source_E=torch.arange(-b, 0))]
        else:
            first, one = blocks[0], torch.zeros(1, dtype=torch.long)
            steps = [DecodeStep(feed_T=empty, emit_E=first[:1], source_E=torch.tensor([-1]))]
            steps += [DecodeStep(feed_T=first[j - 1:j], emit_E=first[j:j + 1], source_E=one) for j in range(1, b)]
        for k in range(1, len(blocks)):
            fed = blocks[0][-1:] if (self.hybrid_start and k == 1) else blocks[k - 1]
            steps.append(DecodeStep(feed_T=fed, emit_E=blocks[k], source_E=torch.arange(b)))
        return steps
