"""A tiny training task for trainer tests (imported by tests/train/*): a dropout MLP classifier over small MNIST digits.

It uses torch's global RNG (input noise and dropout) so that exact resume really depends on the
restored RNG state, keeps a step-count buffer (``on_step_end``) and exports a ``PretrainedMixin``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from arforge.config import from_dict
from arforge.pretrained import PretrainedMixin
from arforge.train.task import TASKS, TrainTask

TASK_NAME = "test_tiny_classifier"


@dataclass
class TinyClassifierConfig:
    in_dim: int = 64
    hidden: int = 16
    num_classes: int = 10
    dropout: float = 0.1


class TinyClassifier(PretrainedMixin, nn.Module):
    config_class = TinyClassifierConfig
    model_kind = "generator"
    model_type = "test_tiny_classifier"

    def __init__(self, config: TinyClassifierConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.in_dim, config.hidden), nn.LayerNorm(config.hidden), nn.GELU(),
            nn.Dropout(config.dropout), nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x_BD: torch.Tensor) -> torch.Tensor:
        return self.net(x_BD)


@dataclass
class TinyTaskConfig:
    hidden: int = 16
    dropout: float = 0.1
    noise: float = 0.1


class TinyClassifierTask(TrainTask):
    """Noisy-input cross-entropy.

    Test hooks: ``fail_at_step`` raises ``KeyboardInterrupt`` inside that step (a crash mid-step);
    ``sigint_at_step`` sends this process a SIGINT there (a user pressing Ctrl-C).
    """

    def __init__(self, model: TinyClassifier, noise: float):
        super().__init__()
        self.model = model
        self.noise = noise
        self.fail_at_step = -1
        self.sigint_at_step = -1
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.int64))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "TinyClassifierTask":
        c = from_dict(TinyTaskConfig, cfg, source=source, prefix="task")
        in_dim = int(data_info["channels"]) * int(data_info["image_size"]) ** 2
        model = TinyClassifier(TinyClassifierConfig(in_dim, c.hidden, int(data_info["num_classes"]), c.dropout))
        return cls(model, c.noise)

    def training_loss(self, batch, step):
        if step == self.fail_at_step:
            raise KeyboardInterrupt(f"simulated crash at step {step}")
        if step == self.sigint_at_step:
            os.kill(os.getpid(), signal.SIGINT)
        x_BD = batch["image"].flatten(1)
        x_BD = x_BD + self.noise * torch.randn(x_BD.shape, device=x_BD.device, dtype=x_BD.dtype)
        logits_BK = self.model(x_BD)
        loss = F.cross_entropy(logits_BK.float(), batch["label"])
        acc = (logits_BK.argmax(-1) == batch["label"]).float().mean()
        return loss, {"acc": acc.item()}

    @torch.no_grad()
    def evaluate(self, batches):
        correct = total = 0
        for batch in batches:
            logits_BK = self.model(batch["image"].flatten(1))
            correct += (logits_BK.argmax(-1) == batch["label"]).sum().item()
            total += batch["label"].numel()
        return {"val_acc": correct / max(total, 1), "val_items": float(total)}

    def on_step_end(self, step: int) -> None:
        self.steps_seen.fill_(step)

    def export_model(self) -> nn.Module:
        return self.model


TASKS.register(TASK_NAME, TinyClassifierTask, overwrite=True)


def tiny_run_dict(**sections: dict) -> dict:
    """A complete, fast run config (8x8 grayscale MNIST, 192 items) with section overrides merged in."""
    cfg = {
        "task": {"name": TASK_NAME, "hidden": 16},
        "data": {"name": "mnist", "image_size": 8, "channels": 1, "batch_size": 16, "limit": 192},
        "optim": {"lr": 3e-3, "warmup_steps": 3, "schedule": "cosine", "weight_decay": 0.01, "grad_clip": 1.0},
        "train": {"steps": 12, "seed": 3, "log_every": 4, "ckpt_every": 4, "keep_checkpoints": 2},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg
