"""Nearest-code vector quantizer (LlamaGen ``VectorQuantizer`` semantics) with usage tracking.

* Nearest code by squared Euclidean distance ``|z|^2 + |e|^2 - 2 z.e``; with ``l2_norm`` both the
  latents and the codebook rows are l2-normalised first (cosine-similarity lookup), and the
  normalised rows are what the decoder sees.
* Straight-through estimator: the output is ``z + (z_q - z).detach()``.
* Losses (LlamaGen): ``codebook_loss = mean((z_q - sg[z])^2)``, ``commit_loss = beta *
  mean((sg[z_q] - z)^2)`` and ``entropy_loss = ratio * (sample entropy - batch entropy)`` of the
  softmax over ``-distance / temperature``. With ``l2_norm`` the losses use the normalised vectors.
* Usage: the persistent ``codebook_used`` buffer (65,536 floats) is LlamaGen's ring buffer of the
  most recent code indices written in training mode (kept so released checkpoints load strictly).
  The non-persistent ``code_counts`` (V,) counts every code emitted in training mode since
  :meth:`VectorQuantizer.reset_usage`; :meth:`VectorQuantizer.usage` turns them into the fraction of
  codes used and the perplexity of the code distribution.
* Dead codes: :meth:`VectorQuantizer.restart_codes` overwrites chosen rows with given latents
  (the training task uses it to revive codes that went unused for a while).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: length of LlamaGen's ``codebook_used`` ring buffer
USAGE_RING_SIZE = 65536


@dataclass
class QuantizerOutput:
    """Result of :meth:`VectorQuantizer.forward`.

    ``z_q``: quantized latents ``(B, D, h, w)`` in straight-through form (values of the selected,
    possibly l2-normalised codebook rows; gradients flow to the encoder). ``codes``: int64 ``(B, h, w)``.
    ``codebook_loss``, ``commit_loss`` (already times beta), ``entropy_loss`` (already times its
    ratio): float32 scalars; zero where disabled.
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    codebook_loss: torch.Tensor
    commit_loss: torch.Tensor
    entropy_loss: torch.Tensor

    def __iter__(self):
        """Unpack as ``z_q, codes, (codebook_loss, commit_loss, entropy_loss)``."""
        return iter((self.z_q, self.codes, (self.codebook_loss, self.commit_loss, self.entropy_loss)))


def entropy_loss(affinity_NV: torch.Tensor, temperature: float = 0.01) -> torch.Tensor:
    """LlamaGen's codebook entropy loss on affinities (negative distances) ``(N, V)``.

    ``p = softmax(affinity / temperature)`` per latent; the loss is the mean per-latent entropy
    minus the entropy of the batch-averaged distribution (low when each latent picks one code
    confidently and the batch spreads over many codes). Scalar, float32.
    """
    logits_NV = affinity_NV.float() / temperature
    probs_NV = F.softmax(logits_NV, dim=-1)
    log_probs_NV = F.log_softmax(logits_NV + 1e-5, dim=-1)
    avg_probs_V = probs_NV.mean(dim=0)
    avg_entropy = -(avg_probs_V * torch.log(avg_probs_V + 1e-5)).sum()
    sample_entropy = -(probs_NV * log_probs_NV).sum(dim=-1).mean()
    return sample_entropy - avg_entropy


def usage_stats(counts_V: torch.Tensor) -> tuple[float, float]:
    """``(fraction of codes with a non-zero count in [0, 1], perplexity exp(H(p)) in [1, V])``.

    ``counts_V``: how often each of the ``V`` codes was emitted. All-zero counts give ``(0.0, 0.0)``.
    """
    counts_V = counts_V.detach().double()
    total = counts_V.sum()
    if total <= 0:
        return 0.0, 0.0
    p_V = counts_V / total
    nz = p_V > 0
    entropy = -(p_V[nz] * p_V[nz].log()).sum()
    return float(nz.float().mean()), float(math.exp(float(entropy)))


class VectorQuantizer(nn.Module):
    """Codebook of ``codebook_size`` vectors of size ``embed_dim``; names follow LlamaGen (``embedding``, ``codebook_used``).

    Args:
        codebook_size: number of codes ``V``.
        embed_dim: code dimension ``D``.
        beta: commitment loss weight.
        entropy_loss_ratio: weight of the entropy loss (0 disables it).
        l2_norm: normalise latents and codes before the lookup (LlamaGen default).
        show_usage: keep LlamaGen's persistent ``codebook_used`` ring buffer (LlamaGen default True;
            it must match the checkpoint for a strict load).
        entropy_temperature: softmax temperature of the entropy loss (LlamaGen: 0.01).
    """

    def __init__(
        self,
        codebook_size: int,
        embed_dim: int,
        *,
        beta: float = 0.25,
        entropy_loss_ratio: float = 0.0,
        l2_norm: bool = True,
        show_usage: bool = True,
        entropy_temperature: float = 0.01,
    ):
        super().__init__()
        self.codebook_size = codebook_size
        self.embed_dim = embed_dim
        self.beta = beta
        self.entropy_loss_ratio = entropy_loss_ratio
        self.l2_norm = l2_norm
        self.show_usage = show_usage
        self.entropy_temperature = entropy_temperature
        self.embedding = nn.Embedding(codebook_size, embed_dim)
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
            if l2_norm:
                self.embedding.weight.copy_(F.normalize(self.embedding.weight, p=2, dim=-1))
        if show_usage:
            self.register_buffer("codebook_used", torch.zeros(USAGE_RING_SIZE))
        self.register_buffer("code_counts", torch.zeros(codebook_size, dtype=torch.int64), persistent=False)

    def extra_repr(self) -> str:
        return f"codebook_size={self.codebook_size}, embed_dim={self.embed_dim}, l2_norm={self.l2_norm}, beta={self.beta}"

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors ``(V, D)`` the decoder sees (l2-normalised if ``l2_norm``), float32, with grad."""
        weight_VD = self.embedding.weight.float()
        return F.normalize(weight_VD, p=2, dim=-1) if self.l2_norm else weight_VD

    def nearest_codes(self, z_ND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest code of each row of ``z_ND`` (normalised first if ``l2_norm``).

        Returns ``codes_N`` (int64) and the squared distances ``d_NV`` (float32).
        """
        codebook_VD = self.codebook
        z_ND = z_ND.float()
        if self.l2_norm:
            z_ND = F.normalize(z_ND, p=2, dim=-1)
        d_NV = z_ND.pow(2).sum(dim=1, keepdim=True) + codebook_VD.pow(2).sum(dim=1) - 2.0 * z_ND @ codebook_VD.t()
        return d_NV.argmin(dim=1), d_NV

    def forward(self, z_BDhw: torch.Tensor) -> QuantizerOutput:
        """Quantize latents ``(B, D, h, w)``; updates the usage statistics in training mode."""
        if z_BDhw.ndim != 4 or z_BDhw.shape[1] != self.embed_dim:
            raise ValueError(f"expected latents of shape (B, {self.embed_dim}, h, w), got {tuple(z_BDhw.shape)}")
        b, _, h, w = z_BDhw.shape
        with torch.autocast(device_type=z_BDhw.device.type, enabled=False):
            z_BhwD = z_BDhw.float().permute(0, 2, 3, 1)
            if self.l2_norm:
                z_BhwD = F.normalize(z_BhwD, p=2, dim=-1)
            codes_N, d_NV = self.nearest_codes(z_BhwD.reshape(-1, self.embed_dim))
            zq_BhwD = self.codebook[codes_N].view(b, h, w, self.embed_dim)
            zero = z_BhwD.new_zeros(())
            codebook_loss = F.mse_loss(zq_BhwD, z_BhwD.detach())
            commit_loss = self.beta * F.mse_loss(z_BhwD, zq_BhwD.detach())
            ent_loss = self.entropy_loss_ratio * entropy_loss(-d_NV, self.entropy_temperature) if self.entropy_loss_ratio > 0 else zero
            zq_BhwD = z_BhwD + (zq_BhwD - z_BhwD).detach()
        if self.training:
            self.count_usage(codes_N)
        return QuantizerOutput(
            z_q=zq_BhwD.permute(0, 3, 1, 2).to(z_BDhw.dtype),
            codes=codes_N.view(b, h, w),
            codebook_loss=codebook_loss,
            commit_loss=commit_loss,
            entropy_loss=ent_loss,
        )

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, h, w)`` (int) -> code vectors ``(B, D, h, w)`` (LlamaGen ``get_codebook_entry``)."""
        if codes.dtype.is_floating_point or codes.ndim != 3:
            raise ValueError(f"expected integer codes of shape (B, h, w), got {tuple(codes.shape)} {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}); got values in [{int(codes.min())}, {int(codes.max())}]"
            )
        return self.codebook[codes.long()].permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def count_usage(self, codes: torch.Tensor) -> None:
        """Add ``codes`` (any shape, int) to ``code_counts`` and LlamaGen's ``codebook_used`` ring buffer."""
        flat = codes.reshape(-1).long()
        self.code_counts += torch.bincount(flat, minlength=self.codebook_size)
        if self.show_usage:
            recent = flat[-USAGE_RING_SIZE:].to(self.codebook_used.dtype)
            n = recent.numel()
            if n == USAGE_RING_SIZE:
                self.codebook_used.copy_(recent)
            elif n > 0:
                self.codebook_used[:-n] = self.codebook_used[n:].clone()
                self.codebook_used[-n:] = recent

    @torch.no_grad()
    def reset_usage(self) -> None:
        """Forget the codes counted so far (``code_counts``; the LlamaGen ring buffer is kept)."""
        self.code_counts.zero_()

    def usage(self) -> tuple[float, float]:
        """``(fraction of codes used, perplexity)`` over codes counted since :meth:`reset_usage`."""
        return usage_stats(self.code_counts)

    @torch.no_grad()
    def restart_codes(self, code_ids: torch.Tensor, vectors_KD: torch.Tensor) -> None:
        """Overwrite codebook rows ``code_ids`` (K,) with ``vectors_KD`` (normalised first if ``l2_norm``)."""
        if code_ids.numel() != vectors_KD.shape[0] or vectors_KD.shape[-1] != self.embed_dim:
            raise ValueError(
                f"restart_codes needs one {self.embed_dim}-d vector per code id; got {code_ids.numel()} ids and vectors {tuple(vectors_KD.shape)}"
            )
        vectors_KD = vectors_KD.to(self.embedding.weight.dtype)
        if self.l2_norm:
            vectors_KD = F.normalize(vectors_KD, p=2, dim=-1)
        self.embedding.weight[code_ids.long()] = vectors_KD
