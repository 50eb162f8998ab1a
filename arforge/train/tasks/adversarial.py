"""The PatchGAN terms shared by the tokenizer tasks (VQ, video VQ, KL), folded into one loss.

The trainer optimises every task parameter with one optimizer, so both players' terms are added to
the same loss: the discriminator term scores real images and DETACHED reconstructions (its gradient
reaches only the discriminator); the generator's adversarial term runs the reconstructions through
the discriminator with DETACHED discriminator parameters (``torch.func.functional_call``), so its
gradient reaches only the tokenizer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from arforge.tokenizers.losses import discriminator_loss, generator_adversarial_loss

ADVERSARIAL_METRICS = ("gen_adv_loss", "disc_loss", "logits_real", "logits_fake")


def frozen_logits(discriminator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Discriminator logits for ``images`` whose gradient reaches ``images`` but never the discriminator."""
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    frozen.update(dict(discriminator.named_buffers()))
    return functional_call(discriminator, frozen, (images,))


def adversarial_terms(discriminator: nn.Module, real: torch.Tensor, recon: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """``[generator adversarial loss, discriminator loss, mean real logit, mean fake logit]`` for
    image batches ``real`` / ``recon`` ``(N, C, H, W)``; the loss to add is ``weight * (first + second)``."""
    logits_real = discriminator(real.detach())
    logits_fake = discriminator(recon.detach())
    d_loss = discriminator_loss(logits_real, logits_fake, kind)
    g_adv = generator_adversarial_loss(frozen_logits(discriminator, recon), kind)
    return [g_adv, d_loss, logits_real.mean(), logits_fake.mean()]


def untouched(discriminator: nn.Module) -> torch.Tensor:
    """A zero that depends on every discriminator parameter (before the GAN starts), so that
    DistributedDataParallel (``find_unused_parameters=False``) sees them all take part."""
    return 0.0 * sum(p.sum() for p in discriminator.parameters())
