"""Neighbour order (NAR): tokens are generated in waves of equal Manhattan distance from the
top-left token, ``h + w - 1`` passes (``2n - 1`` on an ``n x n`` grid; ``t + h + w - 2`` for a
``(t, h, w)`` video grid, with a third head predicting the next frame).

Token ``(r, c)`` lies on wave ``r + c`` and sees the prefix, every earlier wave and its own wave
(the *proximity mask*); inputs stay in raster order, only the mask changes. Two direction heads
predict the neighbours of each fed token: ``right`` (head 0) predicts ``(r, c + 1)`` and ``below``
(head 1) predicts ``(r + 1, c)``; a token's logits are the average of the heads that reach it
(both for interior tokens, one on the first row/column, both read at the last prefix slot for
``(0, 0)``). On a ``1 x N`` grid every wave is one token and the order is causal raster.
"""

from __future__ import annotations

import torch

from arforge.generators.orders.base import DecodeStep, TrainingArrangement
from arforge.generators.orders.grouped import GroupedOrder, prefix_groups

#: head indices of the direction heads (TIME only on video grids)
RIGHT, BELOW, TIME = 0, 1, 2


class Neighbor(GroupedOrder):
    """``Neighbor(grid_shape)``: waves of constant ``row + col`` (``frame + row + col`` for videos),
    one direction head per grid dimension (right, below, next frame)."""

    name = "neighbor"

    @property
    def num_heads(self) -> int:
        return len(self.grid_shape)

    def token_groups(self) -> torch.Tensor:
        return torch.stack(self.grid_coords()).sum(0)

    def source_tokens(self) -> torch.Tensor:
        """For each token and head, the raster index of the token whose head output predicts it:
        int64 ``(N, H)``, ``-1`` where that head does not reach the token, ``-2`` for the last
        prefix slot (the first token, all heads). Head ``k`` steps along grid dimension ``-1 - k``
        (right, below, next frame)."""
        coords = self.grid_coords()
        idx = torch.arange(self.num_tokens)
        stride, columns = 1, []
        for coord, size in zip(reversed(coords), reversed(self.grid_shape)):
            columns.append(torch.where(coord > 0, idx - stride, torch.full_like(idx, -1)))
            stride *= size
        src = torch.stack(columns, dim=1)
        src[0] = -2
        return src

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        """Feeds tokens ``0..N-2`` at slots ``P + i``; ``head_slots_NH`` holds the output slot of
        each head predicting each token (``-1`` where a head does not reach it)."""
        if num_prefix < 1:
            raise ValueError("the neighbour order needs at least one condition prefix slot")
        n = self.num_tokens
        input_idx = torch.arange(n - 1)
        src = self.source_tokens()
        slots = torch.where(src >= 0, src + num_prefix, src)
        slots[src == -2] = num_prefix - 1
        first_head = (slots >= 0).int().argmax(dim=1)
        primary = slots[torch.arange(n), first_head]
        mask = self.training_mask(prefix_groups(num_prefix), input_idx)
        return TrainingArrangement(input_idx_T=input_idx, target_slot_N=primary, mask_LL=mask, head_slots_NH=slots)

    def decode_schedule(self) -> list[DecodeStep]:
        """Prefill emits ``(0, 0)``; pass ``c`` feeds wave ``c - 1`` (row-ascending) and emits wave
        ``c``. ``source_E`` is ``(E, H)``: the fed row whose head ``k`` predicts each emitted token,
        ``-1`` where that head does not reach it (prefill: ``-1`` = last prefix slot, every head)."""
        members = self.group_members()
        src = self.source_tokens()
        steps = [DecodeStep(feed_T=torch.zeros(0, dtype=torch.long), emit_E=members[0],
                            source_E=torch.full((1, self.num_heads), -1, dtype=torch.long))]
        for c in range(1, len(members)):
            fed = members[c - 1]
            row_of = torch.full((self.num_tokens,), -1, dtype=torch.long)
            row_of[fed] = torch.arange(len(fed))
            s = src[members[c]]
            rows = torch.where(s >= 0, row_of[s.clamp_min(0)], torch.full_like(s, -1))
            steps.append(DecodeStep(feed_T=fed, emit_E=members[c], source_E=rows))
        return steps
