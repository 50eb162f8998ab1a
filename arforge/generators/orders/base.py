"""The generation-order abstraction: where tokens sit, what each training position sees and predicts,
and which positions each decoding step feeds and emits.

Sequences are laid out as ``[prefix (P condition tokens), image tokens ...]``; sequence slot of image
token ``i`` (its index in raster order over the grid) is ``P + i``. An :class:`Order` provides

* the **training arrangement** (:meth:`Order.training_arrangement`): which image tokens are fed,
  which output slot predicts each target token, and the attention mask (``None`` = causal);
* the **decode schedule** (:meth:`Order.decode_schedule`): a list of :class:`DecodeStep`, each
  naming the tokens fed in one forward pass and the tokens sampled from its outputs.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class DecodeStep:
    """One forward pass of decoding.

    Attributes:
        feed_T: image-token indices fed in this pass (int64 ``(T,)``; empty for the prefill pass,
            which feeds the condition prefix instead). Their K/V go to the slots of these indices.
        emit_E: image-token indices sampled from this pass's outputs (int64 ``(E,)``).
        source_E: for each emitted token, the output row it is read from: an index into the fed
            tokens, or ``-1`` for the last prefix position (prefill).
        fed_from_T: the grid index whose token is fed at each ``feed_T`` slot, where that differs
            from the slot itself (a stand-in token, e.g. ZipAR's row-start proxy); ``None``: each
            slot is fed its own token.
        transient_T: positions into ``feed_T`` holding a stand-in: no other query of the pass
            attends to them, and their slots are invalidated after the pass (empty: none).
    """

    feed_T: torch.Tensor
    emit_E: torch.Tensor
    source_E: torch.Tensor
    fed_from_T: torch.Tensor | None = None
    transient_T: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


@dataclass(frozen=True)
class SideQueries:
    """``E`` extra query slots of a teacher-forcing layout, appended after its ``L`` training slots.

    Query ``e`` is fed the image token at grid index ``src_E[e]`` with the rotary angle of grid slot
    ``slot_E[e]``, attends to the training slots where ``visible_EL[e]`` is true and to itself (no
    training slot attends to it), and its output predicts image token ``target_E[e]`` in place of
    the training slot's prediction. ZipAR's exact layout (:mod:`arforge.generators.orders.zipar`)
    trains its row-start proxy queries this way.
    """

    src_E: torch.Tensor
    slot_E: torch.Tensor
    visible_EL: torch.Tensor
    target_E: torch.Tensor


@dataclass(frozen=True)
class TrainingArrangement:
    """Teacher-forcing layout for a ``P``-token prefix.

    Attributes:
        input_idx_T: image-token indices fed after the prefix (their slots are ``P..P+T-1``).
        target_slot_N: for image token ``i``, the sequence slot whose output predicts it.
        mask_LL: boolean attention mask over the ``L = P + T`` slots, or ``None`` for causal.
        head_slots_NH: orders with several direction heads (neighbour order): the slot whose head
            ``h`` output predicts token ``i``, ``-1`` where head ``h`` does not reach it; ``None``
            for single-head orders.
        side: extra query slots whose outputs replace some targets' predictions
            (:class:`SideQueries`), or ``None``.
    """

    input_idx_T: torch.Tensor
    target_slot_N: torch.Tensor
    mask_LL: torch.Tensor | None
    head_slots_NH: torch.Tensor | None = None
    side: SideQueries | None = None


class Order(abc.ABC):
    """A generation order over a token grid: ``(h, w)`` for images or ``(t, h, w)`` for videos.

    Tokens are indexed in raster order over the whole grid (frame by frame for videos).
    ``grid_shape`` is the full shape; ``grid_hw`` its last two (spatial) sides. ``name`` is the
    order's registered name (``ORDERS``), used in configs and error messages.
    """

    name: str = "order"

    def __init__(self, grid_shape: tuple[int, ...]):
        shape = tuple(int(s) for s in grid_shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"a token grid is (h, w) or (t, h, w) of positive sizes, got {list(grid_shape)}")
        self.grid_shape = shape
        self.grid_hw = shape[-2:]

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_shape)

    def grid_coords(self) -> tuple[torch.Tensor, ...]:
        """Coordinates (int64 ``(N,)`` each) of every token, raster-indexed: ``(row, col)`` for an
        image grid, ``(frame, row, col)`` for a video grid."""
        idx = torch.arange(self.num_tokens)
        coords = []
        for size in reversed(self.grid_shape):
            coords.append(idx % size)
            idx = idx // size
        return tuple(reversed(coords))

    @abc.abstractmethod
    def training_arrangement(self, num_prefix: int) -> TrainingArrangement:
        """How to teacher-force a sequence with ``num_prefix`` condition tokens."""

    @abc.abstractmethod
    def decode_schedule(self) -> list[DecodeStep]:
        """The forward passes that generate every token exactly once, in order."""

    def cached_decode_schedule(self) -> list[DecodeStep]:
        """:meth:`decode_schedule`, built on first use and reused (orders are immutable; samplers call
        this once per batch, where rebuilding a neighbour schedule costs about as much as a pass)."""
        if getattr(self, "_schedule", None) is None:
            self._schedule = self.decode_schedule()
        return self._schedule

    def num_decode_steps(self) -> int:
        return len(self.decode_schedule())
