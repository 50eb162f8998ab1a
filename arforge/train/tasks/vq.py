"""Training task for the VQ tokenizer: reconstruction + VQ losses, optional PatchGAN, dead-code restarts.

YAML ``task:`` section::

    task:
      name: vq_tokenizer
      tokenizer: {codebook_size: 512, codebook_embed_dim: 8, ch: 32, encoder_ch_mult: [1, 2, 2], ...}
      rec_loss: l2            # l1 | l2 pixel loss
      rec_weight: 1.0
      codebook_weight: 1.0    # multiplies codebook + commitment + entropy losses
      disc_weight: 0.0        # > 0 turns the PatchGAN on
      disc_start_step: 0
      disc_loss: hinge        # hinge | non_saturating (discriminator and generator terms)
      discriminator: {ndf: 64, n_layers: 2, norm: group}
      dead_code_restart_every: 0   # > 0: every N steps, codes unused since the last restart are re-seeded
      dead_code_restart_until: 0   # no restarts after this step (0 = no limit), so the decoder can adapt

``tokenizer.in_channels`` comes from the data (``data.channels``) unless given; a given value that
disagrees with the data is an error.

One optimizer: the trainer optimises every task parameter with a single AdamW, so the GAN is
folded into ONE loss (see :mod:`arforge.train.tasks.adversarial`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import torch
import torch.distributed as dist
from torch import nn

from arforge.config import ConfigError, from_dict
from arforge.tokenizers.discriminator import DiscriminatorConfig, PatchGANDiscriminator
from arforge.tokenizers.losses import mse_01, psnr, psnr_from_mse, reconstruction_loss
from arforge.tokenizers.quantizer import usage_stats
from arforge.tokenizers.vq import VQConfig, VQTokenizer
from arforge.train.task import TASKS, TrainTask
from arforge.train.tasks.adversarial import ADVERSARIAL_METRICS, adversarial_terms, frozen_logits, untouched
from arforge.train.tasks.tokenizer_config import with_data_channels

log = logging.getLogger(__name__)


@dataclass
class VQTaskConfig:
    """The ``task:`` section of a VQ tokenizer run (see the module docstring).

    ``tokenizer``: :class:`VQConfig` fields. ``rec_loss`` / ``rec_weight``: pixel loss and its weight.
    ``codebook_weight``: weight of the quantizer losses (codebook + beta * commitment + entropy).
    ``disc_weight``: weight of both GAN terms (0 = no discriminator is built). ``disc_start_step``:
    optimizer step from which the GAN terms are on. ``disc_loss``: loss for both players.
    ``discriminator``: PatchGAN settings. ``dead_code_restart_every``: every that many steps, each
    code emitted at most ``dead_code_threshold`` times since the previous restart is overwritten with
    one of the last batch's latents, worst-quantized first (0 = off, LlamaGen's behaviour).
    ``dead_code_restart_until``: last step at which restarts may happen (0 = no limit); stopping
    early leaves the decoder time to adapt to the re-seeded codes.
    """

    tokenizer: VQConfig = field(default_factory=VQConfig)
    rec_loss: Literal["l1", "l2"] = "l2"
    rec_weight: float = 1.0
    codebook_weight: float = 1.0
    disc_weight: float = 0.0
    disc_start_step: int = 0
    disc_loss: Literal["hinge", "non_saturating"] = "hinge"
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    dead_code_restart_every: int = 0
    dead_code_threshold: int = 0
    dead_code_restart_until: int = 0

    def __post_init__(self) -> None:
        for name in ("rec_weight", "codebook_weight", "disc_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"task.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("disc_start_step", "dead_code_restart_every", "dead_code_threshold", "dead_code_restart_until"):
            if getattr(self, name) < 0:
                raise ConfigError(f"task.{name} must be >= 0, got {getattr(self, name)}")


@TASKS.register("vq_tokenizer")
class VQTrainTask(TrainTask):
    """Trains a :class:`VQTokenizer` (plus an optional PatchGAN) on batches ``{"image": (B, C, H, W) in [-1, 1]}``."""

    def __init__(self, config: VQTaskConfig, image_size: int | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = self.build_tokenizer(config)
        self.discriminator = (
            PatchGANDiscriminator(config.tokenizer.in_channels, config.discriminator) if config.disc_weight > 0 else None
        )
        if image_size is not None:
            self._check_image_size(image_size)
        # codes emitted since the last dead-code restart (persistent: part of exact resume)
        self.register_buffer("restart_counts", torch.zeros(config.tokenizer.codebook_size, dtype=torch.int64))
        self._last_latents_ND: torch.Tensor | None = None
        self._last_errors_N: torch.Tensor | None = None

    @staticmethod
    def build_tokenizer(config: VQTaskConfig) -> nn.Module:
        return VQTokenizer(config.tokenizer)

    @staticmethod
    def pixels(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The tokenizer's input in a batch (images ``(B, C, H, W)``)."""
        return batch["image"]

    @staticmethod
    def frames(x: torch.Tensor) -> torch.Tensor:
        """Input-shaped pixels as a batch of images ``(N, C, H, W)`` (metrics and the PatchGAN are per image)."""
        return x

    def _check_image_size(self, image_size: int) -> None:
        try:
            self.tokenizer.grid_shape(image_size)
        except ValueError as err:
            raise ConfigError(f"task.tokenizer: {err}") from err
        if self.discriminator is not None:
            n_layers = self.config.discriminator.n_layers
            min_size = PatchGANDiscriminator.min_image_size(n_layers)
            if image_size < min_size:
                raise ConfigError(
                    f"task.discriminator.n_layers={n_layers} needs images of at least {min_size} pixels, "
                    f"got {image_size}; lower n_layers"
                )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "VQTrainTask":
        """Validate the ``task:`` mapping (without ``name``) against :class:`VQTaskConfig` for image data ``data_info``."""
        cfg = with_data_channels(cfg, data_info, source)
        config = from_dict(VQTaskConfig, cfg, source=source, prefix="task")
        image_size = data_info.get("image_size")
        return cls(config, image_size=int(image_size) if image_size is not None else None)

    # ------------------------------------------------------------------ losses

    def _gan_active(self, step: int) -> bool:
        return self.discriminator is not None and step >= self.config.disc_start_step

    def _generator_logits(self, recon_BCHW: torch.Tensor) -> torch.Tensor:
        """Discriminator logits for ``recon`` whose gradient reaches ``recon`` but never the discriminator."""
        assert self.discriminator is not None
        return frozen_logits(self.discriminator, recon_BCHW)

    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for one batch ``{"image": (B, C, H, W) in [-1, 1]}`` at optimizer step ``step`` (0-based).

        ``loss = rec_weight * rec + codebook_weight * (codebook + commit + entropy)
        [+ disc_weight * (generator adversarial + discriminator)]``. Metrics: the loss terms, batch
        PSNR (dB, [0, 1] clamped images) and the fraction of codes the batch used.
        """
        cfg = self.config
        pixels = self.pixels(batch)
        z_BDhw = self.tokenizer.encode_to_latent(pixels)
        q = self.tokenizer.quantize(z_BDhw)
        recon = self.tokenizer.decode_latent(q.z_q)
        rec = reconstruction_loss(recon, pixels, cfg.rec_loss)
        images_BCHW, recon_BCHW = self.frames(pixels), self.frames(recon)
        vq = q.codebook_loss + q.commit_loss + q.entropy_loss
        loss = cfg.rec_weight * rec + cfg.codebook_weight * vq
        names = ["rec_loss", "codebook_loss", "commit_loss", "entropy_loss", "psnr", "batch_code_usage"]
        batch_usage = torch.bincount(q.codes.flatten(), minlength=self.tokenizer.codebook_size).gt(0).float().mean()
        values = [rec, q.codebook_loss, q.commit_loss, q.entropy_loss, psnr(recon_BCHW, images_BCHW).mean(), batch_usage]
        if self._gan_active(step):
            terms = adversarial_terms(self.discriminator, images_BCHW, recon_BCHW, cfg.disc_loss)
            loss = loss + cfg.disc_weight * (terms[0] + terms[1])
            names += list(ADVERSARIAL_METRICS)
            values += terms
        elif self.discriminator is not None:
            loss = loss + untouched(self.discriminator)
        if cfg.dead_code_restart_every > 0:
            self._remember_latents(z_BDhw, q.codes)
        metrics = dict(zip(names, torch.stack([v.detach().float() for v in values]).tolist()))
        return loss, metrics

    # ------------------------------------------------------------------ dead codes

    @torch.no_grad()
    def _remember_latents(self, z_BDhw: torch.Tensor, codes_Bhw: torch.Tensor) -> None:
        quantizer = self.tokenizer.quantize
        z_ND = z_BDhw.detach().float().movedim(1, -1).reshape(-1, quantizer.embed_dim)
        if quantizer.l2_norm:
            z_ND = torch.nn.functional.normalize(z_ND, p=2, dim=-1)
        codes_N = codes_Bhw.flatten()
        self._last_latents_ND = z_ND
        self._last_errors_N = (z_ND - quantizer.codebook.detach()[codes_N]).pow(2).sum(dim=-1)
        self.restart_counts += torch.bincount(codes_N, minlength=quantizer.codebook_size)

    @torch.no_grad()
    def restart_dead_codes(self) -> int:
        """Re-seed codes used at most ``dead_code_threshold`` times since the last restart; returns how many.

        Each dead code gets a distinct latent of the most recent training batch, the worst-quantized
        latents first (deterministic, no randomness). Under ``torch.distributed`` the counts are
        summed over processes and rank 0's latents are broadcast, so all replicas stay identical.
        """
        if self._last_latents_ND is None:
            return 0
        counts_V = self.restart_counts.clone()
        latents_ND, errors_N = self._last_latents_ND, self._last_errors_N
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            dist.all_reduce(counts_V)
        dead_K = torch.nonzero(counts_V <= self.config.dead_code_threshold).flatten()
        n = torch.tensor(min(dead_K.numel(), latents_ND.shape[0]), device=counts_V.device)
        if distributed:
            dist.all_reduce(n, op=dist.ReduceOp.MIN)
        n = int(n)
        if n > 0:
            vectors_nD = latents_ND[errors_N.argsort(descending=True)[:n]].contiguous()
            if distributed:
                dist.broadcast(vectors_nD, src=0)
            self.tokenizer.quantize.restart_codes(dead_K[:n], vectors_nD)
        self.restart_counts.zero_()
        return n

    def on_step_end(self, step: int) -> None:
        """After optimizer step ``step`` (1-based count of completed steps): dead-code restart when due."""
        every, until = self.config.dead_code_restart_every, self.config.dead_code_restart_until
        if every > 0 and step % every == 0 and (until == 0 or step <= until):
            n = self.restart_dead_codes()
            if n:
                log.debug("step %d: restarted %d dead codes", step, n)

    # ------------------------------------------------------------------ eval / export

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
        """Validation metrics over ``batches`` of images (the tokenizer in eval mode).

        ``val_psnr``: mean per-image PSNR (dB, images mapped to [0, 1] and clamped);
        ``val_psnr_pooled``: PSNR of the mean squared error over all images; ``val_rec_loss``: the
        configured pixel loss; ``val_codebook_usage``: fraction of codes used over all batches;
        ``val_perplexity``: perplexity of that code distribution.
        """
        was_training = self.tokenizer.training
        self.tokenizer.eval()
        counts_V = torch.zeros(self.tokenizer.codebook_size, dtype=torch.int64)
        psnr_sum, mse_sum, rec_sum, n_images, n_batches = 0.0, 0.0, 0.0, 0, 0
        try:
            for batch in batches:
                pixels = self.pixels(batch)
                out = self.tokenizer(pixels)
                images_BCHW, recon_BCHW = self.frames(pixels), self.frames(out.recon)
                mse_B = mse_01(recon_BCHW, images_BCHW)
                psnr_sum += float(psnr_from_mse(mse_B).sum())
                mse_sum += float(mse_B.sum())
                rec_sum += float(reconstruction_loss(out.recon, pixels, self.config.rec_loss))
                counts_V += torch.bincount(out.codes.flatten().cpu(), minlength=self.tokenizer.codebook_size)
                n_images += images_BCHW.shape[0]
                n_batches += 1
        finally:
            self.tokenizer.train(was_training)
        if n_images == 0:
            return {}
        usage, perplexity = usage_stats(counts_V)
        pooled = float(psnr_from_mse(torch.tensor(mse_sum / n_images)))
        return {
            "val_psnr": psnr_sum / n_images,
            "val_psnr_pooled": pooled,
            "val_rec_loss": rec_sum / n_batches,
            "val_codebook_usage": usage,
            "val_perplexity": perplexity,
        }

    def export_model(self) -> nn.Module:
        """The :class:`VQTokenizer` (shares parameters with this task)."""
        return self.tokenizer
