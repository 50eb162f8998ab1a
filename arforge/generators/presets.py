"""Named model presets (timm style): the published model shapes of LlamaGen, VAR and MAR.

A config names one with ``preset`` and overrides any field beside it::

    task:
      name: generator
      family: raster
      model:
        preset: gpt_b            # LlamaGen GPT-B's width, depth and heads
        backbone: {resid_dropout_p: 0.0}   # anything given wins over the preset

The preset's fields are laid under the given ones (nested mappings merged key by key), and the
preset must belong to the family being built (``ConfigError`` otherwise). The interop loaders read
head counts from the same table.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

from arforge.config import ConfigError
from arforge.registry import Registry


@dataclass(frozen=True)
class Preset:
    """``family``: the registered generator type it configures; ``config``: fields of that family's
    config (nested mappings for sub-configs); ``description``: where the shape comes from."""

    family: str
    config: Mapping[str, Any]
    description: str = ""


PRESETS: Registry[Preset] = Registry("model preset")


def register_preset(name: str, preset: Preset) -> Preset:
    """Add ``preset`` under ``name`` (users may add their own)."""
    return PRESETS.register(name, preset)


for _name, (_dim, _layers, _heads) in {
    "gpt_b": (768, 12, 12), "gpt_l": (1024, 24, 16), "gpt_xl": (1280, 36, 20), "gpt_xxl": (1536, 48, 24),
    "gpt_xxxl": (2560, 48, 40), "gpt_1b": (2048, 22, 32), "gpt_3b": (3200, 24, 32), "gpt_7b": (4096, 32, 32),
}.items():
    register_preset(_name, Preset("raster", {"backbone": {"dim": _dim, "n_layer": _layers, "n_head": _heads}},
                                  f"LlamaGen {_name.replace('gpt_', 'GPT-').upper()}: dim {_dim}, {_layers} layers, {_heads} heads"))

for _depth in (16, 20, 24, 30, 36):
    register_preset(f"var_d{_depth}", Preset("var", {"depth": _depth},
                                             f"VAR-d{_depth}: width {64 * _depth}, {_depth} blocks of {_depth} heads"))

for _name, (_width, _depth, _heads, _head_d, _head_w) in {
    "mar_b": (768, 12, 12, 6, 1024), "mar_l": (1024, 16, 16, 8, 1280), "mar_h": (1280, 20, 16, 12, 1536),
}.items():
    register_preset(_name, Preset("mar", {
        "encoder_embed_dim": _width, "encoder_depth": _depth, "encoder_num_heads": _heads,
        "decoder_embed_dim": _width, "decoder_depth": _depth, "decoder_num_heads": _heads,
        "diffloss_d": _head_d, "diffloss_w": _head_w,
    }, f"{_name.replace('mar_', 'MAR-').upper()}: width {_width}, {_depth}+{_depth} blocks of {_heads} heads, "
       f"diffusion head {_head_d} x {_head_w}"))


def _merge(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_preset(family: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with its ``preset`` entry (if any) expanded under the other fields."""
    config = dict(config)
    name = config.pop("preset", None)
    if name is None:
        return config
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset 'model.preset: {name}'; known: {', '.join(PRESETS.names())}")
    preset = PRESETS.get(name)
    if preset.family != family:
        raise ConfigError(f"model.preset {name} is a {preset.family} preset; this model takes {family} presets "
                          f"({', '.join(presets_of(family)) or 'none'})")
    return _merge(preset.config, config)


def presets_of(family: str) -> dict[str, Preset]:
    """Every preset of ``family``, by name."""
    return {name: PRESETS.get(name) for name in PRESETS.names() if PRESETS.get(name).family == family}


class PresetMixin:
    """Lets ``from_config_dict`` (configs, YAML) of a model family take ``preset: <name>`` among the
    presets of ``preset_family`` (the raster-derived families share the GPT presets, FlowAR VAR's)."""

    preset_family: str = ""

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], source: str | None = None):
        return super().from_config_dict(resolve_preset(cls.preset_family, config), source)  # type: ignore[misc]
