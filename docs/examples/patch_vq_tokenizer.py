"""A new tokenizer in one user file: pixel-space patch VQ (every ``p x p`` patch is replaced by the
nearest of ``K`` learned patches), with the training task that learns its codebook.

    arforge train --import docs/examples/patch_vq_tokenizer.py docs/examples/patch_vq.yaml
    arforge train --import docs/examples/patch_vq_tokenizer.py configs/mnist_raster.yaml \
        --set data.tokenizer=runs/patch_vq/model

Importing the file registers the tokenizer type ``patch_vq`` (so saved folders load by type: every
command that reads one needs the same ``--import``) and the task ``patch_vq_tokenizer``. Generators
train on its codes through ``data.name: tokens`` like on any built-in tokenizer: the token cache
needs only the :class:`~arforge.tokenizers.protocol.Tokenizer` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from arforge.config import from_dict
from arforge.pretrained import PretrainedMixin, register_model
from arforge.train.task import TASKS, TrainTask


@dataclass
class PatchVQConfig:
    channels: int = 3
    patch: int = 4
    codebook_size: int = 64


@register_model
class PatchVQTokenizer(PretrainedMixin, nn.Module):
    """Images ``(B, C, H, W)`` in ``[-1, 1]`` <-> codes ``(B, H / p, W / p)`` in ``[0, K)``."""

    config_class = PatchVQConfig
    model_kind = "tokenizer"
    model_type = "patch_vq"
    is_continuous = False

    def __init__(self, config: PatchVQConfig):
        super().__init__()
        self.config = config
        dim = config.channels * config.patch ** 2
        self.codebook = nn.Parameter(torch.rand(config.codebook_size, dim) * 2 - 1)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        return h // self.config.patch, w // self.config.patch

    def patches(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        """``(B, h, w, C p p)``: the image's non-overlapping patches, flattened."""
        p = self.config.patch
        B, C, H, W = images_BCHW.shape
        x = images_BCHW.reshape(B, C, H // p, p, W // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(B, H // p, W // p, C * p * p)

    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        patches = self.patches(images_BCHW)
        distances = torch.cdist(patches.flatten(0, 2), self.codebook)  # (B h w, K)
        return distances.argmin(-1).view(patches.shape[:3])

    def decode(self, codes_Bhw: torch.Tensor) -> torch.Tensor:
        p, C = self.config.patch, self.config.channels
        B, h, w = codes_Bhw.shape
        x = self.codebook[codes_Bhw].reshape(B, h, w, C, p, p)
        return x.permute(0, 3, 1, 4, 2, 5).reshape(B, C, h * p, w * p)


@dataclass
class PatchVQTaskConfig:
    patch: int = 4
    codebook_size: int = 64


@TASKS.register("patch_vq_tokenizer")
class PatchVQTrainTask(TrainTask):
    """Online k-means by SGD: each patch pulls its nearest code towards itself (mean squared error)."""

    def __init__(self, tokenizer: PatchVQTokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None):
        task = from_dict(PatchVQTaskConfig, cfg, source=source, prefix="task")
        return cls(PatchVQTokenizer(PatchVQConfig(int(data_info.get("channels") or 3), task.patch, task.codebook_size)))

    def training_loss(self, batch, step):
        images = batch["image"]
        codes = self.tokenizer.encode(images)
        loss = F.mse_loss(self.tokenizer.decode(codes), images)
        used = codes.unique().numel() / self.tokenizer.codebook_size
        return loss, {"loss": loss.item(), "codebook_usage": used}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        errors = [F.mse_loss(self.tokenizer.decode(self.tokenizer.encode(b["image"])), b["image"]).item() for b in batches]
        return {"val_mse": sum(errors) / max(len(errors), 1)}

    def export_model(self) -> nn.Module:
        return self.tokenizer
