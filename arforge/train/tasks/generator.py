"""Training task for token generators: next-token cross-entropy on cached tokenizer codes.

YAML ``task:`` section::

    task:
      name: generator
      family: raster            # registered generator type
      model:                    # the family's config; vocab/grid/classes come from the data
        class_dropout_prob: 0.1
        backbone: {dim: 128, n_layer: 4, n_head: 4}
        order: {name: raster}   # optional (raster family): any registered order, e.g. a user's own

``vocab_size``, ``grid_size`` and ``num_classes`` are taken from the token data (``data_info``)
unless given; a given value that disagrees with the data is an error. ZipAR-aware training (part of
the batches under ZipAR's exact layout) is its own task: :mod:`arforge.train.tasks.zipar_aware`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from arforge.config import ConfigError, from_dict
from arforge.pretrained import MODEL_CLASSES
from arforge.train.task import TASKS, TrainTask


def fill_from_data(model_cfg: dict[str, Any], derived: Mapping[str, Any]) -> None:
    """Set each ``derived`` (data-determined) model field in ``model_cfg``; a given value that
    disagrees with the data raises :class:`ConfigError` naming ``task.model.<field>``."""
    for name, value in derived.items():
        given = model_cfg.get(name)
        if given is not None and (list(given) if isinstance(value, list) else given) != value:
            raise ConfigError(f"task.model.{name}={given} disagrees with the data ({value}); remove it from the config")
        model_cfg[name] = value


@dataclass
class GeneratorTaskConfig:
    family: str = "raster"
    model: dict[str, Any] = field(default_factory=dict)


def build_generator(task_cfg: GeneratorTaskConfig, data_info: Mapping[str, Any], source: str | None = None) -> torch.nn.Module:
    """The registered family ``task.family`` built from ``task.model`` with the vocabulary, grid and
    class count of the token data (``data_info``)."""
    import arforge.generators  # noqa: F401  (registers the families)

    key = f"generator/{task_cfg.family}"
    if key not in MODEL_CLASSES:
        families = [n.split("/", 1)[1] for n in MODEL_CLASSES.names() if n.startswith("generator/")]
        raise ConfigError(f"unknown generator family 'task.family: {task_cfg.family}'{' in ' + source if source else ''}; known: {', '.join(families)}")
    if "codebook_size" not in data_info:
        raise ConfigError(
            f"the generator task trains on token data{' (' + source + ')' if source else ''}: set data.name: tokens "
            "with data.tokenizer: <tokenizer dir> (or data.path: <token cache>)"
        )
    model_cfg = dict(task_cfg.model)
    derived = {
        "vocab_size": int(data_info["codebook_size"]),
        "grid_size": [int(s) for s in data_info["grid_shape"]],
        "num_classes": int(data_info.get("num_classes", 1)),
    }
    fill_from_data(model_cfg, derived)
    model_cls = MODEL_CLASSES.get(key)
    return model_cls.from_config_dict(model_cfg, source=source)


@TASKS.register("generator")
class GeneratorTrainTask(TrainTask):
    """Wraps a token generator; batches are ``{"codes": (B, h, w) int64, "label": (B,) int64}``."""

    config_class: type = GeneratorTaskConfig

    def __init__(self, generator: torch.nn.Module, tokenizer_dir: str | None = None):
        super().__init__()
        self.generator = generator
        self.generator.pretrained_extra = {"tokenizer_dir": tokenizer_dir} if tokenizer_dir else {}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "GeneratorTrainTask":
        task_cfg = from_dict(cls.config_class, cfg, source=source, prefix="task")
        return cls.from_task_config(task_cfg, build_generator(task_cfg, data_info, source), data_info)

    @classmethod
    def from_task_config(cls, task_cfg: GeneratorTaskConfig, generator: torch.nn.Module,
                         data_info: Mapping[str, Any]) -> "GeneratorTrainTask":
        """The task around an already built generator (subclasses read their own fields of ``task_cfg``)."""
        return cls(generator, data_info.get("tokenizer_dir"))

    def _logits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits ``(B, N, V)`` and the target tokens ``(B, N)`` of a batch."""
        tokens_BN = batch["codes"].flatten(1).long()
        return self.generator(tokens_BN, batch["label"].long()), tokens_BN

    def training_logits(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits the training loss is taken of (subclasses may change the layout per batch)."""
        return self._logits(batch)

    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        logits_BNV, tokens_BN = self.training_logits(batch, step)
        loss = F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten())
        acc = (logits_BNV.argmax(-1) == tokens_BN).float().mean()
        return loss, {"loss": loss.item(), "token_acc": acc.item()}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Validation loss (nats per token) and token accuracy."""
        total, count, correct = 0.0, 0, 0.0
        for batch in batches:
            logits_BNV, tokens_BN = self._logits(batch)
            total += F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten(), reduction="sum").item()
            correct += (logits_BNV.argmax(-1) == tokens_BN).float().sum().item()
            count += tokens_BN.numel()
        return {"val_loss": total / max(count, 1), "val_token_acc": correct / max(count, 1)}

    def export_model(self) -> torch.nn.Module:
        return self.generator
