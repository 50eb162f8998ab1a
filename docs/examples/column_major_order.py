"""A new generation order in one user file: column-major (top to bottom, then left to right).

    arforge train --import docs/examples/column_major_order.py docs/examples/column_major.yaml \
        --set data.tokenizer=runs/quickstart/tokenizer/model

Importing this file registers the order as ``column_major``; a raster-family config then chooses it
with ``model.order: {name: column_major}``. The raster family feeds tokens at their own grid slots
(their own 2D RoPE angles) in the order's sequence, so nothing else has to change: training uses
:meth:`training_arrangement`, every sampler that walks decode schedules (``ar``) uses
:meth:`decode_schedule`.
"""

from __future__ import annotations

import torch

from arforge.generators.orders import DecodeStep, Order, TrainingArrangement, register_order


@register_order
class ColumnMajor(Order):
    """Token ``(r, c)`` is generated after every token of columns ``< c`` and rows ``< r`` of column ``c``."""

    name = "column_major"

    def sequence(self) -> torch.Tensor:
        """Raster indices in generation order (int64 ``(N,)``)."""
        rows, cols = self.grid_shape[-2:]
        return torch.arange(rows * cols).view(rows, cols).t().flatten()

    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        seq = self.sequence()
        target_slot = torch.empty_like(seq)
        target_slot[seq] = torch.arange(seq.numel()) + num_prefix - 1  # the k-th token is read at slot P - 1 + k
        return TrainingArrangement(input_idx_T=seq[:-1], target_slot_N=target_slot, mask_LL=None)  # causal

    def decode_schedule(self) -> list[DecodeStep]:
        seq = self.sequence()
        steps = [DecodeStep(feed_T=torch.zeros(0, dtype=torch.long), emit_E=seq[:1], source_E=torch.tensor([-1]))]
        for k in range(1, seq.numel()):
            steps.append(DecodeStep(feed_T=seq[k - 1:k], emit_E=seq[k:k + 1], source_E=torch.tensor([0])))
        return steps
