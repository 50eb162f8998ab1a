"""Multi-scale residual vector quantizer (VAR's ``VectorQuantizer2``): one codebook, K token maps.

For a latent ``f`` ``(B, C, H, W)`` and ``patch_nums = (p_1, ..., p_K)`` with ``p_K = H = W``:
the residual ``f_rest`` (initially ``f``) is area-downsampled to ``p_k x p_k``, every cell is
replaced by its nearest code (squared Euclidean distance), the code map is bicubic-upsampled back
to ``H x W``, refined by ``phi_k`` (a 3x3 conv blended as ``(1 - r) h + r conv(h)``) and added to
``f_hat`` / subtracted from ``f_rest``. Tokens of all scales, concatenated coarse to fine, form a
sequence of ``L = sum p_k^2`` indices.

``phi`` sharing follows VAR: ``phi_count = 1`` one shared conv, ``0`` one per scale, ``K > 1``
``K`` convs, scale ``k`` using the conv whose tick (``linspace(1/(3K), 1 - 1/(3K), K)`` for ``K = 4``,
else ``linspace(1/(2K), 1 - 1/(2K), K)``) is nearest to ``k / (K_scales - 1)`` (ties as numpy's
float64 argmin resolves them, so released checkpoints pick the same conv).

The VAR transformer is teacher-forced with :meth:`MultiScaleQuantizer.teacher_forcing_inputs` (the
cumulative ``f_hat`` after scale ``k`` area-downsampled to ``p_{k+1}``) and samples with
:meth:`MultiScaleQuantizer.next_input`, which performs the same update one scale at a time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from arforge.tokenizers.quantizer import usage_stats


class Phi(nn.Conv2d):
    """VAR's residual refinement ``(1 - ratio) * h + ratio * conv3x3(h)`` (shape-preserving)."""

    def __init__(self, dim: int, ratio: float):
        super().__init__(dim, dim, kernel_size=3, padding=1)
        self.ratio = abs(ratio)

    def forward(self, h_BChw: torch.Tensor) -> torch.Tensor:
        return h_BChw * (1 - self.ratio) + super().forward(h_BChw) * self.ratio


def phi_indices(num_scales: int, phi_count: int) -> list[int]:
    """Which ``phi`` conv each scale uses (VAR's tick rule; see the module docstring)."""
    if phi_count == 1:
        return [0] * num_scales
    K = num_scales if phi_count == 0 else phi_count
    ticks = np.linspace(1 / 3 / K, 1 - 1 / 3 / K, K) if K == 4 else np.linspace(1 / 2 / K, 1 - 1 / 2 / K, K)
    return [int(np.argmin(np.abs(ticks - si / (num_scales - 1)))) for si in range(num_scales)]


@dataclass
class MultiScaleQuantizerOutput:
    """Training result: ``f_hat`` ``(B, C, H, W)`` in straight-through form (values of the quantized
    reconstruction, gradients to the encoder), ``indices``: one int64 ``(B, p_k^2)`` per scale,
    ``vq_loss``: VAR's loss ``mean_k [beta * |sg(f_hat_k) - f|^2 + |f_hat_k - sg(f)|^2]`` (scalar)."""

    f_hat: torch.Tensor
    indices: list[torch.Tensor]
    vq_loss: torch.Tensor


class MultiScaleQuantizer(nn.Module):
    """Shared codebook ``embedding`` ``(V, C)``, ``phis`` convs, per-scale usage counts."""

    def __init__(self, codebook_size: int, dim: int, patch_nums: list[int] | tuple[int, ...], phi_count: int = 4,
                 phi_ratio: float = 0.5, beta: float = 0.25):
        super().__init__()
        if len(patch_nums) < 2 or list(patch_nums) != sorted(set(patch_nums)):
            raise ValueError(f"patch_nums must be >= 2 strictly increasing sizes, got {list(patch_nums)}")
        self.patch_nums = tuple(int(p) for p in patch_nums)
        self.codebook_size, self.dim, self.beta = codebook_size, dim, beta
        self.embedding = nn.Embedding(codebook_size, dim)
        n_phi = len(self.patch_nums) if phi_count == 0 else phi_count
        self.phis = nn.ModuleList(Phi(dim, phi_ratio) if abs(phi_ratio) > 1e-6 else nn.Identity() for _ in range(n_phi))
        self.phi_index = phi_indices(len(self.patch_nums), phi_count)
        self.register_buffer("code_counts_SV", torch.zeros(len(self.patch_nums), codebook_size), persistent=False)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    @property
    def seq_len(self) -> int:
        """``L = sum p_k^2``."""
        return sum(p * p for p in self.patch_nums)

    def phi(self, si: int) -> nn.Module:
        return self.phis[self.phi_index[si]]

    # ------------------------------------------------------------------ pieces
    def nearest(self, z_NC: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean) for each row of ``z_NC`` -> int64 ``(N,)``."""
        codes = self.embedding.weight.detach()
        d_NV = (z_NC.square().sum(1, keepdim=True) + codes.square().sum(1)).addmm_(z_NC, codes.T, alpha=-2, beta=1)
        return d_NV.argmin(dim=1)

    def _upsampled(self, si: int, h_BChw: torch.Tensor, size: int) -> torch.Tensor:
        """``phi_k(bicubic_up(h))`` at the full latent size (no resize at the last scale)."""
        if si != self.num_scales - 1:
            h_BChw = F.interpolate(h_BChw, size=(size, size), mode="bicubic")
        return self.phi(si)(h_BChw)

    def lookup(self, idx_Bl: torch.Tensor, side: int) -> torch.Tensor:
        """Codes ``(B, side^2)`` -> code vectors ``(B, C, side, side)``."""
        B = idx_Bl.shape[0]
        return self.embedding(idx_Bl).transpose(1, 2).reshape(B, self.dim, side, side)

    def _check_latent(self, f_BChw: torch.Tensor) -> None:
        if f_BChw.ndim != 4 or f_BChw.shape[1] != self.dim or tuple(f_BChw.shape[-2:]) != (self.patch_nums[-1],) * 2:
            raise ValueError(f"expected latents (B, {self.dim}, {self.patch_nums[-1]}, {self.patch_nums[-1]}) "
                             f"(the last patch size), got {tuple(f_BChw.shape)}")

    def _residual_codes(self, f_BChw: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """The residual loop shared by encoding and training: per scale, the codes ``(B, p_k^2)``,
        the refined code map ``h_k`` ``(B, C, H, W)`` (differentiable w.r.t. the codebook and
        ``phi``) and the residual rows ``(B p_k^2, C)`` the codes were chosen for. The residual is
        detached: code choice never sends gradients anywhere."""
        self._check_latent(f_BChw)
        B, C, H, W = f_BChw.shape
        f_rest = f_BChw.detach().float()
        indices, maps, residuals = [], [], []
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != self.num_scales - 1 else f_rest
            z_NC = z.permute(0, 2, 3, 1).reshape(-1, C)
            idx_Bl = self.nearest(z_NC).view(B, pn * pn)
            h = self._upsampled(si, self.lookup(idx_Bl, pn), H)
            f_rest = f_rest - h.detach()
            indices.append(idx_Bl)
            maps.append(h)
            residuals.append(z_NC)
        return indices, maps, residuals

    # ------------------------------------------------------------------ encode / decode
    @torch.no_grad()
    def quantize(self, f_BChw: torch.Tensor, return_fhats: bool = False):
        """Residual quantization of ``f`` -> list of int64 ``(B, p_k^2)`` per scale (and, with
        ``return_fhats``, the cumulative ``f_hat`` after every scale)."""
        indices, maps, _ = self._residual_codes(f_BChw)
        return (indices, list(itertools.accumulate(maps))) if return_fhats else indices

    def indices_to_fhat(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale codes -> the reconstructed latent ``f_hat`` ``(B, C, H, W)`` (float32)."""
        side = self.patch_nums[-1]
        return sum(self._upsampled(si, self.lookup(idx, pn).float(), side)
                   for si, (pn, idx) in enumerate(zip(self.patch_nums, indices)))

    def teacher_forcing_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """VAR's teacher-forcing input ``(B, L - p_1^2, C)``: for every scale ``k < K``, the
        cumulative ``f_hat`` after scale ``k`` area-downsampled to ``p_{k+1}``, flattened row-major
        (the inputs :meth:`next_input` produces during sampling, from the true codes)."""
        B, side = indices[0].shape[0], self.patch_nums[-1]
        f_hat = torch.zeros(B, self.dim, side, side, device=indices[0].device)
        parts = []
        for si in range(self.num_scales - 1):
            f_hat, nxt = self.next_input(si, f_hat, self.lookup(indices[si], self.patch_nums[si]).float())
            parts.append(nxt.flatten(2).transpose(1, 2))
        return torch.cat(parts, dim=1)

    def next_input(self, si: int, f_hat: torch.Tensor, h_BChw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One sampling step: add scale ``si``'s code map ``h`` ``(B, C, p_si, p_si)`` to ``f_hat``;
        return ``(f_hat, f_hat area-downsampled to the next scale)`` (``f_hat`` twice at the last scale)."""
        f_hat = f_hat + self._upsampled(si, h_BChw, self.patch_nums[-1])
        if si == self.num_scales - 1:
            return f_hat, f_hat
        nxt = self.patch_nums[si + 1]
        return f_hat, F.interpolate(f_hat, size=(nxt, nxt), mode="area")

    def split(self, idx_BL: torch.Tensor) -> list[torch.Tensor]:
        """A flat ``(B, L)`` token sequence -> the per-scale list."""
        if idx_BL.ndim != 2 or idx_BL.shape[1] != self.seq_len:
            raise ValueError(f"expected multi-scale tokens (B, {self.seq_len}) for patch_nums {list(self.patch_nums)}, "
                             f"got {tuple(idx_BL.shape)}")
        return list(idx_BL.split([p * p for p in self.patch_nums], dim=1))

    # ------------------------------------------------------------------ training
    def forward(self, f_BChw: torch.Tensor) -> MultiScaleQuantizerOutput:
        """Training pass: residual quantization with gradients to the codebook and ``phi`` convs
        through ``f_hat`` and to the encoder through the straight-through output."""
        indices, maps, residuals = self._residual_codes(f_BChw)
        f = f_BChw.float()
        f_no_grad = f.detach()
        f_hat = torch.zeros_like(f_no_grad)
        loss = f.new_zeros(())
        for h in maps:
            f_hat = f_hat + h
            loss = loss + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_no_grad)
        if self.training:
            for si, idx in enumerate(indices):
                self.code_counts_SV[si] += idx.flatten().bincount(minlength=self.codebook_size).float()
            self.last_residuals = torch.cat(residuals)
        f_hat_ste = (f_hat.detach() - f_no_grad) + f
        return MultiScaleQuantizerOutput(f_hat=f_hat_ste, indices=indices, vq_loss=loss / self.num_scales)

    @torch.no_grad()
    def restart_codes(self, code_ids: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Re-seed codebook rows ``code_ids`` with residual vectors (any scale) of the last training
        batch, drawn at random; a no-op before the first training pass."""
        pool = getattr(self, "last_residuals", None)
        if pool is None or code_ids.numel() == 0:
            return
        pick = torch.randint(pool.shape[0], (code_ids.numel(),), generator=generator, device=pool.device)
        self.embedding.weight[code_ids.to(pool.device)] = pool[pick].to(self.embedding.weight.dtype)

    # ------------------------------------------------------------------ usage
    def reset_usage(self) -> None:
        self.code_counts_SV.zero_()

    def usage(self) -> tuple[float, float]:
        """``(fraction of codes used, perplexity)`` over all scales since :meth:`reset_usage` (training mode)."""
        return usage_stats(self.code_counts_SV.sum(0))

    def usage_per_scale(self) -> list[float]:
        """Fraction of codes used at each scale since :meth:`reset_usage`."""
        return [usage_stats(c)[0] for c in self.code_counts_SV]
