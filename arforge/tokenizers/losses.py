"""Tokenizer training losses and metrics: pixel reconstruction loss, GAN losses, PSNR.

GAN conventions: the discriminator outputs logits (higher = "real"). ``hinge`` and
``non_saturating`` are the two choices for both players (LlamaGen trains with hinge).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

RecLoss = Literal["l1", "l2"]
GanLoss = Literal["hinge", "non_saturating"]


def reconstruction_loss(recon_BCHW: torch.Tensor, target_BCHW: torch.Tensor, kind: RecLoss = "l2") -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``l2``) pixel error over all elements; scalar, float32."""
    diff = recon_BCHW.float() - target_BCHW.float()
    if kind == "l1":
        return diff.abs().mean()
    if kind == "l2":
        return diff.pow(2).mean()
    raise ValueError(f"unknown reconstruction loss '{kind}'; use 'l1' or 'l2'")


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, kind: GanLoss = "hinge") -> torch.Tensor:
    """Discriminator loss on logits for real and (detached) fake images; scalar.

    ``hinge``: ``0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))``;
    ``non_saturating``: ``0.5 * (mean(softplus(-real)) + mean(softplus(fake)))`` (binary cross-entropy).
    """
    real, fake = logits_real.float(), logits_fake.float()
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    if kind == "non_saturating":
        return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())
    raise ValueError(f"unknown GAN loss '{kind}'; use 'hinge' or 'non_saturating'")


def generator_adversarial_loss(logits_fake: torch.Tensor, kind: GanLoss = "hinge") -> torch.Tensor:
    """Generator (tokenizer) loss on the discriminator's logits for reconstructions; scalar.

    ``hinge``: ``-mean(fake)``; ``non_saturating``: ``mean(softplus(-fake))``.
    """
    fake = logits_fake.float()
    if kind == "hinge":
        return -fake.mean()
    if kind == "non_saturating":
        return F.softplus(-fake).mean()
    raise ValueError(f"unknown GAN loss '{kind}'; use 'hinge' or 'non_saturating'")


@torch.no_grad()
def mse_01(recon_BCHW: torch.Tensor, target_BCHW: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error ``(B,)`` after mapping both images from [-1, 1] to [0, 1] and clamping."""
    a = ((recon_BCHW.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    b = ((target_BCHW.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    return (a - b).pow(2).flatten(1).mean(dim=1)


def psnr_from_mse(mse: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """``10 * log10(1 / mse)`` in dB (same shape as ``mse``) for errors of [0, 1] images (peak 1.0); ``mse`` is clamped at ``eps``."""
    return -10.0 * torch.log10(mse.clamp_min(eps))


@torch.no_grad()
def psnr(recon_BCHW: torch.Tensor, target_BCHW: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB ``(B,)`` of images given in [-1, 1] (mapped to [0, 1] and clamped, peak 1.0)."""
    return psnr_from_mse(mse_01(recon_BCHW, target_BCHW))
