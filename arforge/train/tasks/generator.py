"""Training task for token generators: next-token cross-entropy on cached tokenizer codes.

YAML ``task:`` section::

    task:
      name: generator
      family: raster            # registered generator type
      model:                    # the family's config; vocab/grid/classes come from the data
        class_dropout_prob: 0.1
        backbone: {dim: 128, n_layer: 4, n_head: 4}
      zipar_aware: {window: 4, prob: 0.5, proxy: above}   # optional (raster family): ZipAR-aware training

``vocab_size``, ``grid_size`` and ``num_classes`` are taken from the token data (``data_info``)
unless given; a given value that disagrees with the data is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

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
class ZipARAwareConfig:
    """ZipAR-aware training of a raster model: each batch, with probability ``prob``, every query
    computes what it computes when ZipAR with window ``window`` and row-start proxy ``proxy``
    decodes (it sees only the tokens generated before it, and rows start from the proxy query:
    :func:`arforge.samplers.zipar.zipar_training_layout`); otherwise plain causal teacher forcing."""

    window: int = 4
    prob: float = 0.5
    proxy: str = "above"

    def __post_init__(self) -> None:
        from arforge.samplers.zipar import PROXIES

        if self.window < 1 or not 0.0 <= self.prob <= 1.0:
            raise ConfigError(f"task.zipar_aware needs window >= 1 and prob in [0, 1], got {self.window}, {self.prob}")
        if self.proxy not in PROXIES:
            raise ConfigError(f"task.zipar_aware.proxy must be one of {PROXIES}, got '{self.proxy}'")


@dataclass
class GeneratorTaskConfig:
    family: str = "raster"
    model: dict[str, Any] = field(default_factory=dict)
    zipar_aware: Optional[ZipARAwareConfig] = None


@TASKS.register("generator")
class GeneratorTrainTask(TrainTask):
    """Wraps a token generator; batches are ``{"codes": (B, h, w) int64, "label": (B,) int64}``."""

    def __init__(self, generator: torch.nn.Module, tokenizer_dir: str | None = None,
                 zipar_aware: ZipARAwareConfig | None = None):
        super().__init__()
        self.generator = generator
        self.zipar_aware = zipar_aware
        self._zipar_layout = None
        if zipar_aware is not None:
            if getattr(generator, "model_type", None) != "raster" or len(generator.order.grid_shape) != 2:
                raise ConfigError("task.zipar_aware applies to raster generators of images (family: raster)")
            generator.config.require_class_condition("task.zipar_aware")
            from arforge.samplers.zipar import zipar_training_layout

            rows, width = generator.order.grid_shape
            self._zipar_layout = zipar_training_layout(rows, width, min(zipar_aware.window, width), generator.num_prefix,
                                                       zipar_aware.proxy)
        self.generator.pretrained_extra = {"tokenizer_dir": tokenizer_dir} if tokenizer_dir else {}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "GeneratorTrainTask":
        import arforge.generators  # noqa: F401  (registers the families)

        task_cfg = from_dict(GeneratorTaskConfig, cfg, source=source, prefix="task")
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
        generator = model_cls.from_config_dict(model_cfg, source=source)
        return cls(generator, data_info.get("tokenizer_dir"), task_cfg.zipar_aware)

    def _logits(self, batch: Mapping[str, torch.Tensor], zipar_layout=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits ``(B, N, V)`` and the target tokens ``(B, N)`` of a batch (under a
        ZipAR training layout if given)."""
        tokens_BN = batch["codes"].flatten(1).long()
        if zipar_layout is None:
            return self.generator(tokens_BN, batch["label"].long()), tokens_BN
        from arforge.samplers.zipar import zipar_layout_logits

        return zipar_layout_logits(self.generator, tokens_BN, batch["label"].long(), zipar_layout), tokens_BN

    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        layout = None
        if self._zipar_layout is not None and float(torch.rand(())) < self.zipar_aware.prob:
            layout = self._zipar_layout
        logits_BNV, tokens_BN = self._logits(batch) if layout is None else self._logits(batch, layout)
        loss = F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten())
        acc = (logits_BNV.argmax(-1) == tokens_BN).float().mean()
        return loss, {"loss": loss.item(), "token_acc": acc.item()}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Validation loss and token accuracy; with ``zipar_aware`` also ``val_loss_zipar``, the loss
        under the ZipAR layout (what ZipAR decoding with that window computes)."""
        total, total_zipar, count, correct = 0.0, 0.0, 0, 0.0
        for batch in batches:
            logits_BNV, tokens_BN = self._logits(batch)
            total += F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten(), reduction="sum").item()
            correct += (logits_BNV.argmax(-1) == tokens_BN).float().sum().item()
            count += tokens_BN.numel()
            if self._zipar_layout is not None:
                logits_BNV, _ = self._logits(batch, self._zipar_layout)
                total_zipar += F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten(), reduction="sum").item()
        metrics = {"val_loss": total / max(count, 1), "val_token_acc": correct / max(count, 1)}
        if self._zipar_layout is not None:
            metrics["val_loss_zipar"] = total_zipar / max(count, 1)
        return metrics

    def export_model(self) -> torch.nn.Module:
        return self.generator
