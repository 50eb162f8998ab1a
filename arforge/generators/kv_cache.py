"""Static key/value cache indexed by sequence position, with a validity bitmap.

Every layer owns a preallocated buffer ``(B, L_max, H, D)``; slot ``p`` holds the key/value of the
token at sequence position ``p``. ``valid_BL`` says which slots hold real entries. This one design
serves every decoder:

* plain AR and next-block writes append (positions increase);
* ZipAR and neighbour orders write anywhere; slots not generated yet stay invalid and are masked;
* speculative decoding rolls back by clearing validity (:meth:`KVCache.truncate`): nothing is copied.

Shapes never change during decoding, which keeps the decode step compile-friendly (gpt-fast style).
A query at position ``q`` sees slot ``k`` iff ``valid[k]`` and ``k <= q`` (``causal=True``) — the
rule of a raster-trained model applied to whatever has been generated so far.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer static K/V buffers plus a ``(B, L_max)`` validity bitmap.

    Args:
        n_layers, batch_size, max_len, n_kv_heads, head_dim: buffer geometry.
        dtype, device: storage dtype/device (use the activation dtype, e.g. bf16 on GPU).
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        max_len: int,
        n_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (batch_size, max_len, n_kv_heads, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.valid_BL = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.slot_pos_L = torch.arange(max_len, device=device)

    @property
    def batch_size(self) -> int:
        return self.valid_BL.shape[0]

    @property
    def max_len(self) -> int:
        return self.valid_BL.shape[1]

    def reset(self) -> None:
        """Invalidate every slot (buffers are kept; stale values are never read)."""
        self.valid_BL.zero_()

    def mark_valid(self, pos_BT: torch.Tensor) -> None:
        """Mark slots ``pos_BT`` (int64 ``(B, T)``) as holding real entries."""
        self._check_pos(pos_BT)
        self.valid_BL.scatter_(1, pos_BT, True)

    def invalidate(self, pos_BT: torch.Tensor) -> None:
        """Mark slots ``pos_BT`` as empty (rejected drafts, overwritten proxies)."""
        self._check_pos(pos_BT)
        self.valid_BL.scatter_(1, pos_BT, False)

    def truncate(self, length_B: torch.Tensor | int) -> None:
        """Roll back: invalidate every slot ``>= length_B[b]`` in row ``b`` (no copies)."""
        length = torch.as_tensor(length_B, device=self.valid_BL.device).reshape(-1, 1)
        self.valid_BL &= self.slot_pos_L[None, :] < length

    def write(self, layer: int, pos_BT: torch.Tensor, k_BTHD: torch.Tensor, v_BTHD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` of the new tokens at slots ``pos_BT``; return the layer's full buffers ``(B, L_max, H, D)``."""
        b_idx = torch.arange(pos_BT.shape[0], device=pos_BT.device)[:, None].expand_as(pos_BT)
        self.k[layer][b_idx, pos_BT] = k_BTHD.to(self.k[layer].dtype)
        self.v[layer][b_idx, pos_BT] = v_BTHD.to(self.v[layer].dtype)
        return self.k[layer], self.v[layer]

    def attention_mask(self, query_pos_BT: torch.Tensor, causal: bool = True) -> torch.Tensor:
        """Boolean mask ``(B, 1, T, L_max)``: True where query ``t`` may attend slot ``k``.

        ``valid[k]`` and, if ``causal``, ``k <= query_pos[t]``. Call after :meth:`mark_valid` for
        the tokens of the current step, so that every query sees at least itself.
        """
        mask = self.valid_BL[:, None, None, :].expand(-1, 1, query_pos_BT.shape[1], -1)
        if causal:
            mask = mask & (self.slot_pos_L[None, None, None, :] <= query_pos_BT[:, None, :, None])
        return mask

    def length_B(self) -> torch.Tensor:
        """Per row, one past the last valid slot (0 if none)."""
        last = torch.where(self.valid_BL, self.slot_pos_L[None], torch.full_like(self.slot_pos_L[None], -1))
        return last.max(dim=1).values + 1

    def _check_pos(self, pos_BT: torch.Tensor) -> None:
        if pos_BT.dim() != 2 or pos_BT.shape[0] != self.batch_size:
            raise ValueError(f"positions must have shape (B={self.batch_size}, T), got {tuple(pos_BT.shape)}")
