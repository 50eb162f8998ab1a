"""Group-causal orders: tokens are partitioned into ordered groups (blocks, waves, cells) and every
token sees the condition prefix, all earlier groups and its *own* group (bidirectional inside a group).

This is the attention rule shared by next-block (NBP), neighbour (NAR) and next-cell (xAR) orders;
they differ only in how groups are drawn and which output predicts each token. Inputs stay at their
raster slots (``P + raster index``), so a group-causal model decodes from the same position-indexed
KV cache as a raster one: when group ``g`` is fed, only groups ``<= g`` have been written, so "every
valid slot" is exactly the group-causal row (``decode(..., causal=False)``).
"""

from __future__ import annotations

import abc

import torch

from arforge.generators.orders.base import Order


def group_causal_mask(groups_L: torch.Tensor) -> torch.Tensor:
    """Boolean ``(L, L)``: query ``i`` may attend key ``j`` iff ``groups[j] <= groups[i]``."""
    return groups_L[None, :] <= groups_L[:, None]


def members_of(ids_N: torch.Tensor) -> list[torch.Tensor]:
    """For ids ``0..G-1`` (int64 ``(N,)``), the ascending indices holding each id."""
    return [torch.nonzero(ids_N == g).flatten() for g in range(int(ids_N.max()) + 1)]


def prefix_groups(num_prefix: int, shared_tail: int = 1) -> torch.Tensor:
    """Group ids of ``num_prefix`` prefix slots: causal (one group per slot, ids ``<= 0``) except the
    last ``shared_tail`` slots, which form group 0 together (e.g. NBP's start tokens)."""
    if shared_tail < 1 or shared_tail > max(num_prefix, 1):
        raise ValueError(f"shared_tail={shared_tail} must lie in [1, num_prefix={num_prefix}]")
    first_shared = num_prefix - shared_tail
    return (torch.arange(num_prefix) - first_shared).clamp_max(0)


class GroupedOrder(Order):
    """An order whose decode steps each emit one group of tokens (group ids ``0..G-1``)."""

    @abc.abstractmethod
    def token_groups(self) -> torch.Tensor:
        """Group id of every image token (int64 ``(N,)``, raster-indexed, ids ``0..G-1``)."""

    @property
    def num_groups(self) -> int:
        return int(self.token_groups().max()) + 1

    def group_members(self) -> list[torch.Tensor]:
        """Raster indices of each group's tokens, ascending (row-major inside the group)."""
        return members_of(self.token_groups())

    def training_mask(self, prefix_group_P: torch.Tensor, input_idx_T: torch.Tensor) -> torch.Tensor:
        """Group-causal ``(P + T, P + T)`` mask for a prefix with group ids ``prefix_group_P`` followed
        by image tokens ``input_idx_T`` (image group ``g`` gets id ``g + 1``, after the prefix)."""
        groups_L = torch.cat([prefix_group_P, self.token_groups()[input_idx_T] + 1])
        return group_causal_mask(groups_L)

    def num_decode_steps(self) -> int:
        return self.num_groups
