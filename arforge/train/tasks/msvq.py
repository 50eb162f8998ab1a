"""Training task for the multi-scale residual VQ tokenizer (VAR's VQVAE, whose training code VAR
never released): pixel reconstruction + VAR's multi-scale VQ loss.

YAML ``task:`` section::

    task:
      name: msvq_tokenizer
      tokenizer: {patch_nums: [1, 2, 3, 4, 6, 8], codebook_size: 512, latent_channels: 16,
                  block_out_channels: [32, 64, 64], ...}
      rec_loss: l2          # l1 | l2 pixel loss
      rec_weight: 1.0
      vq_weight: 1.0        # multiplies mean_k [beta |sg(f_hat_k) - f|^2 + |f_hat_k - sg(f)|^2]
      dead_code_restart_every: 50   # > 0: codes unused for that many steps are re-seeded from residuals
      dead_code_restart_until: 400  # no restarts after this step (0 = no limit)

``tokenizer.in_channels`` comes from the data; the image size must equal ``patch_nums[-1]`` times
the downsample factor. Codebook usage (over all scales, since the last log) is logged as ``usage``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import torch
import torch.distributed as dist
from torch import nn

from arforge.config import ConfigError, from_dict
from arforge.tokenizers.losses import mse_01, psnr, psnr_from_mse, reconstruction_loss
from arforge.tokenizers.multiscale import MultiScaleVQConfig, MultiScaleVQTokenizer
from arforge.train.task import TASKS, TrainTask
from arforge.train.tasks.tokenizer_config import check_image_size, with_data_channels


@dataclass
class MultiScaleVQTaskConfig:
    """``tokenizer``: :class:`MultiScaleVQConfig` fields; ``rec_loss``/``rec_weight``: pixel loss;
    ``vq_weight``: weight of the quantizer's loss; ``usage_every``: steps per codebook-usage window.
    ``dead_code_restart_every``: every that many steps, codes no scale emitted since the previous
    restart are overwritten with residual vectors of the last batch (0 = off);
    ``dead_code_restart_until``: last step at which restarts happen (0 = no limit)."""

    tokenizer: MultiScaleVQConfig = field(default_factory=MultiScaleVQConfig)
    rec_loss: Literal["l1", "l2"] = "l2"
    rec_weight: float = 1.0
    vq_weight: float = 1.0
    usage_every: int = 100
    dead_code_restart_every: int = 0
    dead_code_restart_until: int = 0

    def __post_init__(self) -> None:
        if self.rec_weight < 0 or self.vq_weight < 0 or self.usage_every < 1:
            raise ConfigError("task.rec_weight and task.vq_weight must be >= 0, task.usage_every >= 1")
        if self.dead_code_restart_every < 0 or self.dead_code_restart_until < 0:
            raise ConfigError("task.dead_code_restart_every and task.dead_code_restart_until must be >= 0")


@TASKS.register("msvq_tokenizer")
class MultiScaleVQTrainTask(TrainTask):
    """Trains a :class:`MultiScaleVQTokenizer` on ``{"image": (B, C, H, W) in [-1, 1]}`` batches."""

    def __init__(self, config: MultiScaleVQTaskConfig):
        super().__init__()
        self.config = config
        self.tokenizer = MultiScaleVQTokenizer(config.tokenizer)
        self._usage = (0.0, 0.0)
        # codes emitted since the last dead-code restart (persistent: part of exact resume)
        self.register_buffer("hits_since_restart", torch.zeros(config.tokenizer.codebook_size))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "MultiScaleVQTrainTask":
        task = cls(from_dict(MultiScaleVQTaskConfig, with_data_channels(cfg, data_info, source), source=source, prefix="task"))
        check_image_size(task.tokenizer, data_info)
        return task

    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        images = batch["image"]
        recon, tokens_BL, vq_loss = self.tokenizer(images)
        self.hits_since_restart += tokens_BL.flatten().bincount(minlength=self.hits_since_restart.numel()).float()
        rec = reconstruction_loss(recon, images, self.config.rec_loss)
        loss = self.config.rec_weight * rec + self.config.vq_weight * vq_loss
        values = torch.stack([rec.detach(), vq_loss.detach(), psnr(recon.detach(), images).mean()]).tolist()
        metrics = dict(zip(["rec_loss", "vq_loss", "psnr"], values))
        metrics["usage"], metrics["perplexity"] = self._usage
        return loss, metrics

    def on_step_end(self, step: int) -> None:
        if step % self.config.usage_every == 0:
            self._usage = self.tokenizer.usage()
            self.tokenizer.reset_usage()
        every, until = self.config.dead_code_restart_every, self.config.dead_code_restart_until
        if every and step % every == 0 and (not until or step <= until):
            distributed = dist.is_available() and dist.is_initialized()
            if distributed:  # every replica restarts the same codes with rank 0's vectors
                dist.all_reduce(self.hits_since_restart)
            self.tokenizer.quantize.restart_codes((self.hits_since_restart == 0).nonzero().flatten())
            if distributed:
                dist.broadcast(self.tokenizer.quantize.embedding.weight.data, src=0)
            self.hits_since_restart.zero_()

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
        """``val_psnr`` (mean per image, dB, on [0, 1]-clamped images) and ``val_rec_loss`` of the
        eval-mode tokenizer (tokens from :meth:`encode`, images from :meth:`decode`)."""
        was_training = self.tokenizer.training
        self.tokenizer.eval()
        psnr_sum, rec_sum, n_images, n_batches = 0.0, 0.0, 0, 0
        try:
            for batch in batches:
                images = batch["image"]
                recon = self.tokenizer.decode(self.tokenizer.encode(images))
                psnr_sum += float(psnr_from_mse(mse_01(recon, images)).sum())
                rec_sum += float(reconstruction_loss(recon, images, self.config.rec_loss))
                n_images += images.shape[0]
                n_batches += 1
        finally:
            self.tokenizer.train(was_training)
        return {"val_psnr": psnr_sum / n_images, "val_rec_loss": rec_sum / n_batches} if n_images else {}

    def export_model(self) -> nn.Module:
        return self.tokenizer
