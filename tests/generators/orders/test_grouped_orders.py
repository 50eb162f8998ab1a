"""Masks and schedules of the group-causal orders (next-block, neighbour, cells), checked exactly
on small grids, plus the oracles NextBlock(1 token) == Raster and Neighbor(1 x N) == causal."""

import itertools

import pytest
import torch

from arforge.generators.orders import ORDERS, Cells, Neighbor, NextBlock, Raster


def brute_force_mask(groups_of_slot: list[int]) -> torch.Tensor:
    L = len(groups_of_slot)
    return torch.tensor([[groups_of_slot[j] <= groups_of_slot[i] for j in range(L)] for i in range(L)])


def test_next_block_of_one_token_is_raster():
    for grid in [(1, 5), (3, 4)]:
        raster, nb = Raster(grid).training_arrangement(1), NextBlock(grid, (1, 1)).training_arrangement(1)
        assert torch.equal(nb.input_idx_T, raster.input_idx_T)
        assert torch.equal(nb.target_slot_N, raster.target_slot_N)
        assert torch.equal(nb.mask_LL, torch.ones(len(nb.mask_LL), len(nb.mask_LL), dtype=torch.bool).tril())
        r_steps, b_steps = Raster(grid).decode_schedule(), NextBlock(grid, (1, 1)).decode_schedule()
        assert len(r_steps) == len(b_steps)
        for r, b in zip(r_steps, b_steps):
            assert torch.equal(r.feed_T, b.feed_T) and torch.equal(r.emit_E, b.emit_E)


def test_next_block_tile_mask_targets_and_schedule_exactly():
    order = NextBlock((4, 4), (2, 2))  # four 2x2 tiles, b = 4
    P = 4  # class token + 3 start tokens
    arr = order.training_arrangement(P)
    tiles = [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert arr.input_idx_T.tolist() == sorted(sum(tiles[:3], []))
    slot = {tok: P + i for i, tok in enumerate(arr.input_idx_T.tolist())}
    for k, tile in enumerate(tiles):
        for j, tok in enumerate(tile):
            expected = P - 4 + j if k == 0 else slot[tiles[k - 1][j]]
            assert arr.target_slot_N[tok] == expected
    tile_of = {tok: k for k, tile in enumerate(tiles) for tok in tile}
    groups = [0] * P + [tile_of[t] + 1 for t in arr.input_idx_T.tolist()]
    assert torch.equal(arr.mask_LL, brute_force_mask(groups))
    steps = order.decode_schedule()
    assert len(steps) == 4 and [s.emit_E.tolist() for s in steps] == tiles
    assert steps[0].source_E.tolist() == [-4, -3, -2, -1]


def test_next_block_rejects_blocks_that_do_not_tile():
    with pytest.raises(ValueError, match="tile"):
        NextBlock((4, 4), (1, 3))
    with pytest.raises(ValueError, match="prefix"):
        NextBlock((4, 4), (1, 4)).training_arrangement(1)


def test_neighbor_proximity_mask_and_head_sources_exactly():
    h, w = 3, 4
    order = Neighbor((h, w))
    arr = order.training_arrangement(1)
    groups = [0] + [(i // w) + (i % w) + 1 for i in range(h * w - 1)]
    assert torch.equal(arr.mask_LL, brute_force_mask(groups))
    for r, c in itertools.product(range(h), range(w)):
        i = r * w + c
        right, below = arr.head_slots_NH[i].tolist()
        if (r, c) == (0, 0):
            assert right == below == 0  # both heads at the class token
            continue
        assert right == (1 + i - 1 if c > 0 else -1)
        assert below == (1 + i - w if r > 0 else -1)


def test_neighbor_on_one_row_is_causal_raster():
    order = Neighbor((1, 6))
    arr, raster = order.training_arrangement(1), Raster((1, 6)).training_arrangement(1)
    assert torch.equal(arr.mask_LL, torch.ones(6, 6, dtype=torch.bool).tril())
    assert torch.equal(arr.target_slot_N, raster.target_slot_N)
    assert (arr.head_slots_NH[1:, 1] == -1).all()  # the below head never reaches a token


@pytest.mark.parametrize("order, passes", [(Neighbor((8, 8)), 15), (NextBlock((8, 8), (1, 8)), 8),
                                           (NextBlock((8, 8), (2, 4)), 8), (Raster((8, 8)), 64),
                                           (Cells((8, 8), (4, 4)), 4), (NextBlock((8, 8), (1, 8), hybrid_start=True), 15),
                                           (NextBlock((3, 2, 4), (1, 2, 4), hybrid_start=True), 10)])
def test_decode_schedules_emit_every_token_once(order, passes):
    steps = order.decode_schedule()
    assert len(steps) == passes == order.num_decode_steps()
    emitted = torch.cat([s.emit_E for s in steps])
    assert sorted(emitted.tolist()) == list(range(order.num_tokens))
    seen: set[int] = set()
    for s in steps:  # a pass only feeds tokens emitted by earlier passes
        assert set(s.feed_T.tolist()) - set(s.emit_E.tolist()) <= seen
        seen |= set(s.emit_E.tolist())


def test_neighbor_waves_source_rows_point_at_the_right_fed_tokens():
    order = Neighbor((3, 3))
    src = order.source_tokens()
    for step in order.decode_schedule()[1:]:
        for e, tok in enumerate(step.emit_E.tolist()):
            for head in range(2):
                row = int(step.source_E[e, head])
                expected = int(src[tok, head])
                assert (row == -1) == (expected < 0)
                if row >= 0:
                    assert int(step.feed_T[row]) == expected


def test_cells_mask_is_block_causal_without_shift():
    order = Cells((4, 4), (2, 2))
    arr = order.training_arrangement(0)
    groups = order.token_groups().tolist()
    assert torch.equal(arr.mask_LL, brute_force_mask(groups))
    assert torch.equal(arr.target_slot_N, torch.arange(16))
    step = order.decode_schedule()[1]
    assert step.feed_T.tolist() == [0, 1, 4, 5, 2, 3, 6, 7] and step.emit_E.tolist() == [2, 3, 6, 7]


def test_orders_are_registered():
    for name in ("raster", "next_block", "neighbor", "cells", "next_scale"):
        assert name in ORDERS


def test_video_grids_waves_heads_and_frame_blocks():
    order = Neighbor((3, 2, 4))  # (t, h, w)
    assert order.num_decode_steps() == 3 + 2 + 4 - 2 and order.num_heads == 3
    frames, rows, cols = order.grid_coords()
    arr = order.training_arrangement(1)
    groups = [0] + (frames + rows + cols + 1).tolist()[:-1]
    assert torch.equal(arr.mask_LL, brute_force_mask(groups))
    src = order.source_tokens()
    i = 1 * 8 + 1 * 4 + 2  # (1, 1, 2)
    assert src[i].tolist() == [i - 1, i - 4, i - 8]  # right, below, next frame
    frame_blocks = NextBlock((3, 2, 4), (1, 2, 4))
    assert frame_blocks.num_decode_steps() == 3
    assert [s.emit_E.tolist() for s in frame_blocks.decode_schedule()] == [list(range(8 * k, 8 * k + 8)) for k in range(3)]
    with pytest.raises(ValueError, match="one side per grid dimension"):
        NextBlock((3, 2, 4), (2, 4))
