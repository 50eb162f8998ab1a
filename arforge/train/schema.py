"""The run configuration: one YAML file with ``task``, ``data``, ``optim`` and ``train`` sections.

::

    task:  {name: generator, family: raster, model: {...}}   # validated by the task class
    data:  {name: mnist, channels: 1, batch_size: 64}          # arforge.data.DataConfig
    optim: {lr: 3.0e-4, warmup_steps: 100, schedule: cosine}   # OptimConfig
    train: {steps: 2000, mixed_precision: bf16, ema_decay: 0.999, ckpt_every: 500}  # TrainLoopConfig
    imports: [my_package.tasks]                                # optional: modules that register tasks/datasets

:func:`load_run_config` reads the file, applies ``--set key.path=value`` overrides and validates
everything except ``task`` (which the task class validates from its ``name``). Unknown keys and
wrong types raise :class:`~arforge.config.ConfigError` naming the dotted key and the file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml

from arforge.config import ConfigError, from_dict, load_yaml
from arforge.data.config import DataConfig

__all__ = ["DataConfig", "OptimConfig", "TrainLoopConfig", "RunConfig", "load_run_config", "apply_overrides"]


@dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule.

    ``lr``: peak learning rate. ``betas``/``eps``: AdamW moments. ``weight_decay``: decoupled decay
    applied to tensors with >= 2 dimensions only (matrices, convolutions, embeddings), never to
    biases or norm scales. ``warmup_steps``: linear warm-up from ``lr / warmup_steps`` to ``lr``.
    ``schedule``: decay after warm-up down to ``lr * min_lr_ratio`` at the last step (``cosine``,
    ``linear``) or none (``constant``). ``grad_clip``: max global gradient L2 norm (0 = off).
    """

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0 or self.eps <= 0:
            raise ValueError("weight_decay must be >= 0 and eps > 0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass
class TrainLoopConfig:
    """The training loop.

    ``steps``: optimizer steps. ``seed``: seeds model initialisation, data order and every RNG.
    ``mixed_precision``: ``no``, ``bf16`` (CPU or GPU) or ``fp16`` (GPU, with loss scaling).
    ``grad_accum_steps``: micro-batches per optimizer step. ``ema_decay``: EMA of the exported
    model's weights (0 = off; with EMA on, the EMA weights are exported). ``log_every``,
    ``eval_every`` (0 = never), ``ckpt_every`` (0 = only at the end): in optimizer steps.
    ``eval_batches``: validation batches per evaluation (0 = the whole split).
    ``keep_checkpoints``: newest checkpoints kept (0 = all). ``out_dir``: run folder (default
    ``runs/<config file stem>``; ``--out`` wins). ``init_from``: a saved model folder (or a run
    folder with ``model/``) whose weights initialise the trained model before step 0, for
    fine-tuning: same model type, exactly the same keys and shapes; config fields that differ are
    logged. The optimizer, schedule and data order start fresh. Not used on ``--resume`` (the
    checkpoint holds the weights).
    """

    steps: int = 1000
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    grad_accum_steps: int = 1
    ema_decay: float = 0.0
    log_every: int = 10
    eval_every: int = 0
    eval_batches: int = 0
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    out_dir: Optional[str] = None
    init_from: Optional[str] = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1) (0 = off), got {self.ema_decay}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        for name in ("eval_every", "eval_batches", "ckpt_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class RunConfig:
    """A whole training run. ``task`` is a mapping with a ``name`` key (a registered task) and the
    task's own options; ``imports`` lists modules imported first (to register custom tasks/datasets)."""

    task: dict[str, Any]
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    imports: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        name = self.task.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("task.name must name a registered training task (e.g. task: {name: generator, ...})")

    @property
    def task_name(self) -> str:
        return self.task["name"]

    @property
    def task_options(self) -> dict[str, Any]:
        """The ``task`` section without ``name``: what ``TrainTask.from_config`` receives."""
        return {k: v for k, v in self.task.items() if k != "name"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.steps=10"`` -> ``(["train", "steps"], 10)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set train.steps=100")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({err})") from err
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` override set (missing sections are created)."""
    result = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {text!r}: '{prefix}' is {child!r}, not a section that can hold '{parts[depth + 1]}'")
            node = child
        node[parts[-1]] = value
    return result


def run_config_from_dict(data: dict[str, Any], source: str | None = None) -> RunConfig:
    """Validate a plain mapping as a :class:`RunConfig` (errors name the dotted key and ``source``)."""
    if "task" not in data:
        raise ConfigError(f"missing required config key 'task'{' in ' + source if source else ''}: add task: {{name: <task>, ...}}")
    if not isinstance(data["task"], dict) or "name" not in data["task"]:
        raise ConfigError(f"config key 'task.name'{' in ' + source if source else ''} is missing: task must be a mapping with a name")
    _check_nested_sources(data.get("data"), "data", source)
    return from_dict(RunConfig, data, source=source)


def _check_nested_sources(section: Any, prefix: str, source: str | None) -> None:
    """Validate ``data.source`` (recursively) on its own first, so an error inside it names the exact key.

    ``from_dict`` reports a bad value inside an ``Optional[DataConfig]`` only as a mismatch of the
    whole ``data.source`` mapping; checking it separately keeps messages like
    ``unknown config key 'data.source.chanels'``.
    """
    if not isinstance(section, dict) or not isinstance(section.get("source"), dict):
        return
    _check_nested_sources(section["source"], f"{prefix}.source", source)
    from_dict(DataConfig, section["source"], source=source, prefix=f"{prefix}.source")


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read ``path`` (YAML), validate it, apply ``overrides`` (``"train.steps=10"``) and validate again.

    Errors in the file name the file; errors introduced by an override name the ``--set`` option.
    """
    path = Path(path)
    data = load_yaml(path)
    run_config_from_dict(data, source=str(path))
    if not overrides:
        return run_config_from_dict(data, source=str(path))
    merged = apply_overrides(data, overrides)
    return run_config_from_dict(merged, source=f"--set {' '.join(overrides)} (on {path})")
