"""Raster order: one token per step, row by row (LlamaGen, VQGAN-transformer)."""

from __future__ import annotations

import torch

from arforge.generators.orders.base import DecodeStep, Order, TrainingArrangement


class Raster(Order):
    """Token ``i`` is predicted from the prefix and tokens ``< i``: causal attention, N decode passes.

    Training feeds tokens ``0..N-2`` (slots ``P..P+N-2``); token ``i`` is predicted at slot
    ``P - 1 + i``. Decoding: a prefill pass emits token 0, then pass ``i`` feeds token ``i-1`` and
    emits token ``i``.
    """

    name = "raster"

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        n = self.num_tokens
        return TrainingArrangement(
            input_idx_T=torch.arange(n - 1),
            target_slot_N=torch.arange(n) + num_prefix - 1,
            mask_LL=None,
        )

    def decode_schedule(self) -> list[DecodeStep]:
        empty = torch.zeros(0, dtype=torch.long)
        steps = [DecodeStep(feed_T=empty, emit_E=torch.tensor([0]), source_E=torch.tensor([-1]))]
        for i in range(1, self.num_tokens):
            steps.append(DecodeStep(feed_T=torch.tensor([i - 1]), emit_E=torch.tensor([i]), source_E=torch.tensor([0])))
        return steps

    def num_decode_steps(self) -> int:
        return self.num_tokens
