"""Training task for continuous-token generators (MAR, ...) on cached tokenizer latents.

YAML ``task:`` section::

    task:
      name: latent_generator
      family: mar               # registered generator type with loss(latents, labels): mar, flowar
      model:                    # the family's config; latent_channels/grid/classes come from the data
        buffer_size: 4
        encoder_embed_dim: 128
        ...

``latent_channels`` (``= c / patch_size**2`` of the data), ``grid_size`` and ``num_classes`` are
derived from the latent data unless given; a given value that disagrees is an error. Randomness
(orders, masking ratios, label drop, diffusion noise) comes from torch's global generator, which
the trainer seeds and restores on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from arforge.config import ConfigError, from_dict
from arforge.pretrained import MODEL_CLASSES
from arforge.train.task import TASKS, TrainTask
from arforge.train.tasks.generator import fill_from_data


@dataclass
class LatentGeneratorTaskConfig:
    family: str = "mar"
    model: dict[str, Any] = field(default_factory=dict)


@TASKS.register("latent_generator")
class LatentGeneratorTrainTask(TrainTask):
    """Wraps a continuous-token generator; batches are ``{"latents": (B, c, h, w), "label": (B,)}``."""

    def __init__(self, generator: torch.nn.Module, tokenizer_dir: str | None = None):
        super().__init__()
        self.generator = generator
        self.generator.pretrained_extra = {"tokenizer_dir": tokenizer_dir} if tokenizer_dir else {}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None):
        import arforge.generators  # noqa: F401  (registers flowar)
        import arforge.generators.mar  # noqa: F401  (registers mar)

        task_cfg = from_dict(LatentGeneratorTaskConfig, cfg, source=source, prefix="task")
        key = f"generator/{task_cfg.family}"
        if key not in MODEL_CLASSES:
            raise ConfigError(f"unknown generator family 'task.family: {task_cfg.family}'{' in ' + source if source else ''}")
        if "latent_channels" not in data_info:
            raise ConfigError(f"the latent_generator task trains on latent data{' (' + source + ')' if source else ''}: "
                              "set data.name: latents with data.tokenizer: <KL tokenizer dir> (or data.path: <latent cache>)")
        model_cfg = dict(task_cfg.model)
        patch = int(model_cfg.get("patch_size", 1))
        h, w = (int(s) for s in data_info["grid_shape"])
        if h % patch or w % patch:
            raise ConfigError(f"task.model.patch_size={patch} does not divide the latent grid {h}x{w}")
        derived = {"latent_channels": int(data_info["latent_channels"]), "grid_size": [h // patch, w // patch],
                   "num_classes": int(data_info.get("num_classes", 1))}
        fill_from_data(model_cfg, derived)
        generator = MODEL_CLASSES.get(key).from_config_dict(model_cfg, source=source)
        return cls(generator, data_info.get("tokenizer_dir"))

    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.generator.loss(batch["latents"], batch["label"].long())
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        total, n = 0.0, 0
        for batch in batches:
            total += float(self.generator.loss(batch["latents"], batch["label"].long())) * len(batch["label"])
            n += len(batch["label"])
        return {"val_loss": total / max(n, 1)}

    def export_model(self) -> torch.nn.Module:
        return self.generator
