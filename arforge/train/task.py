"""What the trainer trains: a :class:`TrainTask` module and the registry of task types.

A task owns every trainable parameter of one training run (e.g. a VQ tokenizer plus its PatchGAN
discriminator, or a generator) and knows its loss. The trainer (``arforge.train.trainer``) is
generic: it optimises ``task.parameters()``, checkpoints ``task.state_dict()`` for exact resume,
and exports ``task.export_model()`` (a :class:`~arforge.pretrained.PretrainedMixin` model) with
``save_pretrained`` so that sampling/eval never need the training wrapper.

Tasks are registered by name (``TASKS``) and built from the YAML ``task:`` section by
``TASKS.get(name).from_config(task_cfg: dict, data_info: dict, source: str)``.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import torch
from torch import nn

from arforge.registry import Registry

TASKS: Registry[type["TrainTask"]] = Registry("training task")


class TrainTask(nn.Module, abc.ABC):
    """Base class of trainable tasks.

    Subclasses implement:

    * ``from_config(cfg, data_info, source)`` (classmethod): validate ``cfg`` (a dict, use
      :func:`arforge.config.from_dict`) and build the task. ``data_info`` describes the training data
      (``image_size``, ``channels``, ``num_classes``, for token data also ``codebook_size``,
      ``grid_shape`` and ``tokenizer_dir``).
    * ``training_loss(batch, step) -> (loss, metrics)``: ``loss`` is a scalar tensor to minimise,
      ``metrics`` a dict of python floats logged to ``metrics.jsonl``. Must not use global RNG
      except through torch's (seeded by the trainer, and restored on resume).
    * ``export_model()``: the model to ``save_pretrained`` (shares parameters with the task).
    * optionally ``evaluate(batches) -> dict[str, float]`` on validation data, and
      ``on_step_end(step)`` for bookkeeping (e.g. codebook usage windows).
    """

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "TrainTask":
        """Validate ``cfg`` and build the task for data described by ``data_info``."""

    @abc.abstractmethod
    def training_loss(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise for one batch, and python-float metrics to log."""

    @abc.abstractmethod
    def export_model(self) -> nn.Module:
        """The pretrained model (sharing this task's parameters) to ``save_pretrained``."""

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        return {}

    def on_step_end(self, step: int) -> None:
        return None
