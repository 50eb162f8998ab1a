"""Typed configuration: dataclasses built from plain dicts (YAML/JSON) with strict validation.

Every config in arforge is a ``@dataclass``. :func:`from_dict` builds one from a mapping and
raises :class:`ConfigError` naming the offending key (with its dotted path and the source file)
for unknown keys, missing required keys and values of the wrong type. :func:`to_dict` is the
inverse and produces JSON/YAML-serialisable values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type. The message names the key."""


def _where(source: str | None) -> str:
    return f" in {source}" if source else ""


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str, source: str | None) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (converted where lossless)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: report X's own (more precise) error
            return _coerce(value, real[0], path, source)
        for arg in real:
            try:
                return _coerce(value, arg, path, source)
            except ConfigError:
                continue
        raise ConfigError(
            f"config key '{path}'{_where(source)}: expected {_type_name(tp)}, got {value!r}"
        )
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"config key '{path}'{_where(source)}: {value!r} is not one of {list(allowed)}"
            )
        return value
    if origin in (list, tuple, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"config key '{path}'{_where(source)}: expected a list, got {value!r}"
            )
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"config key '{path}'{_where(source)}: expected {len(args)} items, got {len(value)}"
                )
            items = [_coerce(v, a, f"{path}[{i}]", source) for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{path}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}'{_where(source)}: expected a mapping, got {value!r}")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {k: _coerce(v, val_tp, f"{path}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"config key '{path}'{_where(source)}: expected a mapping for {tp.__name__}, got {value!r}"
            )
        return from_dict(tp, value, source=source, prefix=path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}'{_where(source)}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}'{_where(source)}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}'{_where(source)}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}'{_where(source)}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(
            f"config key '{path}'{_where(source)}: expected {_type_name(tp)}, got {value!r}"
        )
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``.

    Raises :class:`ConfigError` for a key that ``cls`` does not define (listing the valid keys),
    a missing required key, or a value whose type does not match the annotation. ``source`` (a
    file name) and ``prefix`` (the dotted path of ``data``) only make the message precise.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section '{prefix or '<root>'}'{_where(source)} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"unknown config key '{key}'{_where(source)}; valid keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, field in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], path, source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key '{path}'{_where(source)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"invalid config section '{prefix or '<root>'}'{_where(source)}: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """Dataclass -> plain dict of JSON/YAML-serialisable values (tuples become lists)."""

    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return convert(config)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping document raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must contain a YAML mapping at the top level")
    return data


@dataclasses.dataclass
class ComponentSpec:
    """A registered component chosen by name in a config: ``{name: column_major, options: {...}}``.

    :meth:`build` looks ``name`` up in a registry and calls the entry with the caller's positional
    arguments and ``options`` as keywords; an unknown name or options the entry does not take raise
    :class:`ConfigError` naming ``key`` (the config path, e.g. ``model.order``)."""

    name: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def build(self, registry, *args: Any, key: str) -> Any:
        if self.name not in registry:
            raise ConfigError(f"unknown {registry.kind} '{key}.name: {self.name}'; registered: {', '.join(registry.names())} "
                              "(a user's own needs its module: --import MODULE)")
        try:
            return registry.get(self.name)(*args, **self.options)
        except TypeError as err:
            raise ConfigError(f"{key}.options {self.options} do not fit {registry.kind} '{self.name}': {err}") from err
