"""Training task for the causal video VQ tokenizer: the VQ tokenizer task on ``{"video": (B, T, C, H, W)}``
batches (reconstruction + VQ losses, optional per-frame PatchGAN, dead-code restarts).

YAML ``task:`` section::

    task:
      name: video_vq_tokenizer
      tokenizer: {ch: 32, ch_mult: [1, 2, 2], temporal_down: [false, true], codebook_size: 1024, ...}
      rec_loss: l2
      dead_code_restart_every: 50

Metrics are per frame: ``psnr`` / ``val_psnr`` average the PSNR of every frame of every clip. The
data's ``num_frames`` must be ``1 + k * temporal factor``; a mismatch is reported before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from arforge.config import ConfigError, from_dict
from arforge.tokenizers.video import VideoVQConfig, VideoVQTokenizer
from arforge.train.task import TASKS
from arforge.train.tasks.tokenizer_config import with_data_channels
from arforge.train.tasks.vq import VQTaskConfig, VQTrainTask


@dataclass
class VideoVQTaskConfig(VQTaskConfig):
    """:class:`~arforge.train.tasks.vq.VQTaskConfig` with a :class:`VideoVQConfig` tokenizer."""

    tokenizer: VideoVQConfig = field(default_factory=VideoVQConfig)


@TASKS.register("video_vq_tokenizer")
class VideoVQTrainTask(VQTrainTask):
    """Trains a :class:`VideoVQTokenizer` on clips ``{"video": (B, T, C, H, W) in [-1, 1]}``."""

    @staticmethod
    def build_tokenizer(config: VQTaskConfig) -> nn.Module:
        return VideoVQTokenizer(config.tokenizer)

    @staticmethod
    def pixels(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if "video" not in batch:
            raise ConfigError("the video_vq_tokenizer task trains on clips: use a video dataset (data.name: moving_mnist "
                              "or video_folder)")
        return batch["video"]

    @staticmethod
    def frames(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(0, 1)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "VideoVQTrainTask":
        cfg = with_data_channels(cfg, data_info, source)
        config = from_dict(VideoVQTaskConfig, cfg, source=source, prefix="task")
        image_size = data_info.get("image_size")
        task = cls(config, image_size=int(image_size) if image_size is not None else None)
        if data_info.get("num_frames") is not None:
            try:
                task.tokenizer.latent_frames(int(data_info["num_frames"]))
            except ValueError as err:
                raise ConfigError(f"data.num_frames: {err}") from err
        return task
