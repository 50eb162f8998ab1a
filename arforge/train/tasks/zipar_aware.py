"""ZipAR-aware training of a raster generator (task ``zipar_aware``).

YAML ``task:`` section::

    task:
      name: zipar_aware
      family: raster            # the raster family (ZipAR decodes raster-trained models)
      window: 4                 # ZipAR's window s
      prob: 0.5                 # fraction of the batches trained under ZipAR's layout
      proxy: above              # row-start stand-in (arforge.generators.orders.zipar.proxy_source)
      model: {...}              # as for task.name: generator

Each batch, with probability ``prob``, the model is teacher-forced with the exact layout of the
:class:`~arforge.generators.orders.ZipAR` order (every query sees only the tokens ZipAR decoding has
generated before it, and each row start is predicted from its proxy query); otherwise with plain
causal teacher forcing. The result is still a raster model: plain AR sampling is unchanged, and
``zipar:window=s`` sampling computes what it was trained on. Evaluation also reports
``val_loss_zipar``, the validation loss under the ZipAR layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from arforge.config import ConfigError
from arforge.generators.orders import PROXIES, Raster, TrainingArrangement, ZipAR
from arforge.train.task import TASKS
from arforge.train.tasks.generator import GeneratorTaskConfig, GeneratorTrainTask


@dataclass
class ZipARAwareTaskConfig(GeneratorTaskConfig):
    window: int = 4
    prob: float = 0.5
    proxy: str = "above"

    def __post_init__(self) -> None:
        if self.window < 1 or not 0.0 <= self.prob <= 1.0:
            raise ConfigError(f"task zipar_aware needs window >= 1 and prob in [0, 1], got {self.window}, {self.prob}")
        if self.proxy not in PROXIES:
            raise ConfigError(f"task.proxy must be one of {PROXIES}, got '{self.proxy}'")


@TASKS.register("zipar_aware")
class ZipARAwareTrainTask(GeneratorTrainTask):
    """:class:`GeneratorTrainTask` with a fraction ``prob`` of the batches under ZipAR's exact layout."""

    config_class = ZipARAwareTaskConfig

    def __init__(self, generator: torch.nn.Module, tokenizer_dir: str | None = None, window: int = 4,
                 prob: float = 0.5, proxy: str = "above"):
        super().__init__(generator, tokenizer_dir)
        order = getattr(generator, "order", None)
        if getattr(generator, "model_type", None) != "raster" or type(order) is not Raster or len(order.grid_shape) != 2:
            raise ConfigError("task zipar_aware trains raster generators of images in raster order (family: raster)")
        generator.config.require_class_condition("task zipar_aware")
        self.prob = prob
        self.zipar = ZipAR(order.grid_shape, min(window, order.grid_shape[1]), proxy)
        self.arrangement: TrainingArrangement = self.zipar.training_arrangement(generator.num_prefix)

    @classmethod
    def from_task_config(cls, task_cfg: ZipARAwareTaskConfig, generator: torch.nn.Module,
                         data_info: Mapping[str, Any]) -> "ZipARAwareTrainTask":
        return cls(generator, data_info.get("tokenizer_dir"), task_cfg.window, task_cfg.prob, task_cfg.proxy)

    def _zipar_logits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens_BN = batch["codes"].flatten(1).long()
        return self.generator(tokens_BN, batch["label"].long(), arrangement=self.arrangement), tokens_BN

    def training_logits(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._zipar_logits(batch) if float(torch.rand(())) < self.prob else self._logits(batch)

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """:meth:`GeneratorTrainTask.evaluate` plus ``val_loss_zipar`` (nats per token under the ZipAR layout)."""
        batches = list(batches)
        metrics = super().evaluate(batches)
        total, count = 0.0, 0
        for batch in batches:
            logits_BNV, tokens_BN = self._zipar_logits(batch)
            total += F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten(), reduction="sum").item()
            count += tokens_BN.numel()
        metrics["val_loss_zipar"] = total / max(count, 1)
        return metrics
