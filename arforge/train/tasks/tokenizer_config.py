"""What every tokenizer training task derives from the image data: ``task.tokenizer.in_channels``
from ``data.channels``, and a check that the data's image size fits the tokenizer."""

from __future__ import annotations

from typing import Any, Mapping

from arforge.config import ConfigError


def with_data_channels(cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """A copy of the ``task:`` mapping whose ``tokenizer.in_channels`` is the data's channel count;
    a given value that disagrees with the data raises :class:`ConfigError`."""
    cfg = dict(cfg)
    tok_cfg = cfg.get("tokenizer") or {}
    if not isinstance(tok_cfg, Mapping):
        raise ConfigError(f"config key 'task.tokenizer'{' in ' + source if source else ''} must be a mapping of tokenizer fields")
    tok_cfg = dict(tok_cfg)
    channels = data_info.get("channels")
    if channels is not None:
        given = tok_cfg.get("in_channels")
        if given is not None and given != channels:
            raise ConfigError(f"task.tokenizer.in_channels={given} disagrees with the data ({channels} channels); "
                              "remove it from the config")
        tok_cfg["in_channels"] = int(channels)
    cfg["tokenizer"] = tok_cfg
    return cfg


def check_image_size(tokenizer, data_info: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` if ``tokenizer.grid_shape`` refuses the data's image size."""
    if data_info.get("image_size") is not None:
        try:
            tokenizer.grid_shape(int(data_info["image_size"]))
        except ValueError as err:
            raise ConfigError(f"task.tokenizer: {err}") from err
