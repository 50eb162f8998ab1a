"""Training task for the KL tokenizer: reconstruction + KL to N(0, I) on the posterior.

YAML ``task:`` section::

    task:
      name: kl_tokenizer
      tokenizer: {latent_channels: 4, block_out_channels: [32, 64], layers_per_block: 1, ...}
      rec_loss: l1          # l1 | l2 pixel loss
      rec_weight: 1.0
      kl_weight: 1.0e-6     # per-element KL weight (LDM uses 1e-6 with a perceptual loss)
      disc_weight: 0.0      # > 0 adds a PatchGAN (as the VQ task: disc_start_step, disc_loss, discriminator)

``tokenizer.in_channels`` comes from the data. The posterior is sampled in training (with torch's
seeded global generator, so resume stays exact) and its mean is used for evaluation and export.
The optional PatchGAN terms are folded into the one loss (:mod:`arforge.train.tasks.adversarial`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import torch
from torch import nn

from arforge.config import ConfigError, from_dict
from arforge.tokenizers.discriminator import DiscriminatorConfig, PatchGANDiscriminator
from arforge.tokenizers.kl import KLConfig, KLTokenizer
from arforge.tokenizers.losses import mse_01, psnr, psnr_from_mse, reconstruction_loss
from arforge.train.task import TASKS, TrainTask
from arforge.train.tasks.adversarial import ADVERSARIAL_METRICS, adversarial_terms, untouched
from arforge.train.tasks.tokenizer_config import check_image_size, with_data_channels


@dataclass
class KLTaskConfig:
    """``tokenizer``: :class:`KLConfig` fields; ``rec_loss``/``rec_weight``: pixel loss; ``kl_weight``:
    weight of the KL term (summed over latent elements, averaged over the batch, divided by the
    number of pixels so the weight does not depend on the image size). ``disc_weight`` > 0 adds a
    PatchGAN from optimizer step ``disc_start_step`` with ``disc_loss`` for both players."""

    tokenizer: KLConfig = field(default_factory=KLConfig)
    rec_loss: Literal["l1", "l2"] = "l1"
    rec_weight: float = 1.0
    kl_weight: float = 1e-6
    disc_weight: float = 0.0
    disc_start_step: int = 0
    disc_loss: Literal["hinge", "non_saturating"] = "hinge"
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        if self.rec_weight < 0 or self.kl_weight < 0 or self.disc_weight < 0 or self.disc_start_step < 0:
            raise ConfigError("task.rec_weight, kl_weight, disc_weight and disc_start_step must be >= 0")


@TASKS.register("kl_tokenizer")
class KLTrainTask(TrainTask):
    """Trains a :class:`KLTokenizer` on ``{"image": (B, C, H, W) in [-1, 1]}`` batches."""

    def __init__(self, config: KLTaskConfig):
        super().__init__()
        self.config = config
        self.tokenizer = KLTokenizer(config.tokenizer)
        self.discriminator = (PatchGANDiscriminator(config.tokenizer.in_channels, config.discriminator)
                              if config.disc_weight > 0 else None)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "KLTrainTask":
        task = cls(from_dict(KLTaskConfig, with_data_channels(cfg, data_info, source), source=source, prefix="task"))
        check_image_size(task.tokenizer, data_info)
        if task.discriminator is not None and data_info.get("image_size") is not None:
            min_size = PatchGANDiscriminator.min_image_size(task.config.discriminator.n_layers)
            if int(data_info["image_size"]) < min_size:
                raise ConfigError(f"task.discriminator.n_layers={task.config.discriminator.n_layers} needs images of at "
                                  f"least {min_size} pixels, got {data_info['image_size']}; lower n_layers")
        return task

    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        images = batch["image"]
        out = self.tokenizer(images)
        rec = reconstruction_loss(out.recon, images, self.config.rec_loss)
        kl = out.kl / images[0].numel()
        loss = self.config.rec_weight * rec + self.config.kl_weight * kl
        names = ["rec_loss", "kl", "psnr", "latent_std"]
        values = [rec, kl, psnr(out.recon.detach(), images).mean(), out.latents.std()]
        if self.discriminator is not None and step >= self.config.disc_start_step:
            terms = adversarial_terms(self.discriminator, images, out.recon, self.config.disc_loss)
            loss = loss + self.config.disc_weight * (terms[0] + terms[1])
            names += list(ADVERSARIAL_METRICS)
            values += terms
        elif self.discriminator is not None:
            loss = loss + untouched(self.discriminator)
        return loss, dict(zip(names, torch.stack([v.detach().float() for v in values]).tolist()))

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
        """``val_psnr`` (mean per-image, dB, [0, 1] clamped), ``val_rec_loss``, ``val_latent_std`` (scaled latents)."""
        was_training = self.tokenizer.training
        self.tokenizer.eval()
        psnr_sum, rec_sum, std_sum, n_images, n_batches = 0.0, 0.0, 0.0, 0, 0
        try:
            for batch in batches:
                images = batch["image"]
                out = self.tokenizer(images)
                psnr_sum += float(psnr_from_mse(mse_01(out.recon, images)).sum())
                rec_sum += float(reconstruction_loss(out.recon, images, self.config.rec_loss))
                std_sum += float(out.latents.std())
                n_images += images.shape[0]
                n_batches += 1
        finally:
            self.tokenizer.train(was_training)
        if not n_images:
            return {}
        return {"val_psnr": psnr_sum / n_images, "val_rec_loss": rec_sum / n_batches, "val_latent_std": std_sum / n_batches}

    def export_model(self) -> nn.Module:
        return self.tokenizer
