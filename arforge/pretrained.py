"""``save_pretrained`` / ``from_pretrained`` for every arforge model, with atomic writes and strict loads.

A pretrained directory holds ``config.json`` and ``model.safetensors``::

    {"arforge": {"kind": "tokenizer", "type": "vq", "format": 1}, "config": {...}}

``kind`` is the model family group (``tokenizer`` or ``generator``), ``type`` its registered name.
Loading a directory of the wrong kind or type, a directory without these files, or weights that do
not match the module's parameters exactly raises :class:`CheckpointError` naming the problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch

from arforge.config import from_dict, to_dict
from arforge.registry import Registry
from arforge.utils.device import module_device
from arforge.utils.io import atomic_directory, load_safetensors, save_safetensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1

#: every class that can be saved/loaded, keyed by ``"<kind>/<type>"``
MODEL_CLASSES: Registry[type] = Registry("model class")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, of the wrong family, or does not match the model."""


def load_state_dict_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module`` requiring an exact key and shape match.

    Raises :class:`CheckpointError` listing missing keys, unexpected keys and shape mismatches
    (the first few of each and their counts), with ``source`` naming where the weights came from.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:

        def show(name: str, items: list[str]) -> str:
            if not items:
                return ""
            head = ", ".join(items[:8]) + (", ..." if len(items) > 8 else "")
            return f"\n  {len(items)} {name}: {head}"

        raise CheckpointError(
            f"weights from {source} do not match {type(module).__name__}:"
            + show("missing keys", missing)
            + show("unexpected keys", unexpected)
            + show("shape mismatches", mismatched)
        )
    module.load_state_dict(state_dict, strict=True)


def resolve_model_dir(path: str | Path) -> Path:
    """A pretrained dir, or a training run folder holding one in ``model/``."""
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        return path
    if (path / "model" / CONFIG_NAME).is_file():
        return path / "model"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} does not exist")
    raise CheckpointError(f"{path} holds no arforge model (expected {path}/{CONFIG_NAME} or {path}/model/{CONFIG_NAME})")


def read_config_file(directory: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``directory/config.json``; raises :class:`CheckpointError` if absent/bad."""
    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory} does not exist")
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{directory} is not an arforge checkpoint: {CONFIG_NAME} is missing "
            f"(for LlamaGen/VAR/MAR .pt files use arforge.interop)"
        )
    try:
        meta = json.loads(cfg_path.read_text())
        header = meta["arforge"]
        kind, type_ = header["kind"], header["type"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{cfg_path} is not a valid arforge config ({err})") from err
    return {"kind": kind, "type": type_, "config": meta.get("config", {}), "extra": meta.get("extra", {})}


class PretrainedMixin:
    """Mixin for ``nn.Module`` subclasses with a dataclass ``config``.

    Subclasses set ``config_class`` (a dataclass), ``model_kind`` (``"tokenizer"``/``"generator"``)
    and ``model_type`` (registered name), keep their config in ``self.config`` and are registered
    with :func:`register_model`.
    """

    config_class: ClassVar[type]
    model_kind: ClassVar[str]
    model_type: ClassVar[str]

    #: JSON-serialisable facts saved beside the config (e.g. the tokenizer a generator was trained on)
    pretrained_extra: dict[str, Any] | None = None

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live (the device samplers and pipelines put inputs on)."""
        assert isinstance(self, torch.nn.Module)
        return module_device(self)

    def save_pretrained(self, directory: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` atomically into ``directory`` and return it.

        ``extra`` (default: ``self.pretrained_extra``) is stored under ``"extra"`` in ``config.json``.
        """
        assert isinstance(self, torch.nn.Module)
        directory = Path(directory)
        meta = {
            "arforge": {"kind": self.model_kind, "type": self.model_type, "format": FORMAT_VERSION},
            "config": to_dict(self.config),
            "extra": dict(extra if extra is not None else (self.pretrained_extra or {})),
        }
        with atomic_directory(directory) as tmp:
            save_safetensors(self.state_dict(), tmp / WEIGHTS_NAME)
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], source: str | None = None):
        return cls(from_dict(cls.config_class, config, source=source))

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        """Build the model from ``directory`` and load its weights strictly.

        Raises :class:`CheckpointError` if the directory is missing, holds a different model
        kind/type, or its weights do not match exactly.
        """
        directory = Path(directory)
        meta = read_config_file(directory)
        if meta["kind"] != cls.model_kind or meta["type"] != cls.model_type:
            raise CheckpointError(
                f"{directory} holds a {meta['type']} {meta['kind']}, not a {cls.model_type} {cls.model_kind}; "
                f"load it with arforge.load_pretrained() or pass a {cls.model_type} {cls.model_kind} checkpoint"
            )
        model = cls.from_config_dict(meta["config"], source=str(directory / CONFIG_NAME))
        load_weights_file(model, directory, map_location)
        model.pretrained_extra = dict(meta["extra"])
        return model


def load_weights_file(model: torch.nn.Module, directory: Path, map_location: str | torch.device = "cpu") -> None:
    """Load ``directory/model.safetensors`` into ``model`` strictly (:func:`load_state_dict_strict`)."""
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    load_state_dict_strict(model, load_safetensors(weights, map_location), str(weights))


def load_weights_into(model: torch.nn.Module, directory: str | Path) -> dict[str, tuple[Any, Any]]:
    """Initialise ``model`` in place from a saved model folder (or a training run folder holding
    ``model/``), e.g. to fine-tune. The saved model must have ``model``'s kind and type and exactly
    its keys and shapes (:class:`CheckpointError` otherwise). Returns the config fields that differ
    between the saved model and ``model`` (``{field: (saved, current)}``; the caller decides whether
    that is intended, e.g. a new dropout rate)."""
    directory = resolve_model_dir(directory)
    meta = read_config_file(directory)
    kind, type_ = getattr(model, "model_kind", None), getattr(model, "model_type", None)
    if (meta["kind"], meta["type"]) != (kind, type_):
        raise CheckpointError(f"{directory} holds a {meta['type']} {meta['kind']}, but this run trains a {type_} {kind}; "
                              f"initialise from a {type_} {kind} checkpoint")
    state = model.state_dict()
    load_weights_file(model, directory, next(iter(state.values())).device if state else "cpu")
    current = json.loads(json.dumps(to_dict(model.config))) if hasattr(model, "config") else {}
    return {k: (meta["config"].get(k), v) for k, v in current.items() if meta["config"].get(k) != v}


def register_model(cls: type) -> type:
    """Class decorator: make ``cls`` loadable through :func:`arforge.auto.load_pretrained`."""
    MODEL_CLASSES.register(f"{cls.model_kind}/{cls.model_type}", cls)
    return cls
