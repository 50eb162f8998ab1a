"""Rotary position embeddings (1D, 2D and 3D) as explicit per-position cos/sin tables.

Tables have shape ``(L, head_dim // 2, 2)`` holding ``(cos, sin)`` per rotated pair. Pairs are
*interleaved* (GPT-J style: dims ``2j`` and ``2j+1`` rotate together), as in LlamaGen. Positions
that should not rotate get an identity entry ``(1, 0)``; LlamaGen's condition positions instead get
``(0, 0)``, which multiplies their q and k by zero: :func:`zero_rope` builds those rows.
"""

from __future__ import annotations

import torch


def rope_frequencies(n_pairs: int, dim: int, base: float) -> torch.Tensor:
    """``n_pairs`` inverse frequencies ``base ** (-2j / dim)`` (float32)."""
    return 1.0 / (base ** (torch.arange(0, dim, 2)[:n_pairs].float() / dim))


def rope_1d(positions_L: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Table ``(L, head_dim // 2, 2)`` for integer positions ``positions_L``."""
    freqs = rope_frequencies(head_dim // 2, head_dim, base)
    angles = positions_L.float()[:, None] * freqs[None, :]
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def rope_2d(rows_L: torch.Tensor, cols_L: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Table ``(L, head_dim // 2, 2)``: the first half of the pairs rotates by row, the second by column.

    Matches LlamaGen's ``precompute_freqs_cis_2d``: each half of ``head_dim`` uses
    ``head_dim // 4`` frequencies ``base ** (-2j / (head_dim // 2))``.
    """
    if head_dim % 4:
        raise ValueError(f"2D RoPE needs head_dim divisible by 4, got {head_dim}")
    half = head_dim // 2
    freqs = rope_frequencies(half // 2, half, base)
    angles = torch.cat([rows_L.float()[:, None] * freqs, cols_L.float()[:, None] * freqs], dim=-1)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def rope_3d(frames_L: torch.Tensor, rows_L: torch.Tensor, cols_L: torch.Tensor, head_dim: int,
            base: float = 10000.0) -> torch.Tensor:
    """Table ``(L, head_dim // 2, 2)`` for video tokens: the rotated pairs are split into three
    groups (frame, row, column; the frame group takes the remainder), each with its own frequencies
    ``base ** (-2j / (2 * group_pairs))``."""
    if head_dim % 2:
        raise ValueError(f"3D RoPE needs an even head_dim, got {head_dim}")
    pairs = head_dim // 2
    if pairs < 3:
        raise ValueError(f"3D RoPE needs head_dim >= 6, got {head_dim}")
    spatial = pairs // 3
    groups = [(frames_L, pairs - 2 * spatial), (rows_L, spatial), (cols_L, spatial)]
    angles = torch.cat([pos.float()[:, None] * rope_frequencies(n, 2 * n, base) for pos, n in groups], dim=-1)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def rope_grid(coords: tuple[torch.Tensor, ...], head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """:func:`rope_2d` for ``(row, col)`` coordinates, :func:`rope_3d` for ``(frame, row, col)``."""
    if len(coords) == 2:
        return rope_2d(*coords, head_dim, base)
    if len(coords) == 3:
        return rope_3d(*coords, head_dim, base)
    raise ValueError(f"grid RoPE takes 2 or 3 coordinates per token, got {len(coords)}")


def zero_rope(length: int, head_dim: int) -> torch.Tensor:
    """All-zero table ``(length, head_dim // 2, 2)`` (LlamaGen's condition-token convention)."""
    return torch.zeros(length, head_dim // 2, 2)


def apply_rope(x_BLHD: torch.Tensor, rope_BL_P2: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of ``x_BLHD`` by ``rope`` of shape ``(L, D/2, 2)`` or ``(B, L, D/2, 2)``.

    Computed in float32 and cast back to ``x``'s dtype.
    """
    x = x_BLHD.float().reshape(*x_BLHD.shape[:-1], -1, 2)
    rope = rope_BL_P2 if rope_BL_P2.dim() == 4 else rope_BL_P2[None]
    cos, sin = rope[:, :, None, :, 0], rope[:, :, None, :, 1]
    x0, x1 = x[..., 0], x[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)
    return out.flatten(-2).type_as(x_BLHD)
