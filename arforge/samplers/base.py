"""The sampler API: a base class, the result type and the registry users extend.

Write a new decoding algorithm in one file::

    from arforge.samplers import Sampler, SampleResult, register_sampler

    @register_sampler("my_sampler")
    class MySampler(Sampler):
        def sample(self, generator, condition, *, generator_rng=None, tokenizer=None):
            ...
            return SampleResult(tokens=tokens_Bhw, stats=stats)

Then ``build_sampler("my_sampler", **options)`` or ``arforge sample --sampler my_sampler`` use it.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from arforge.registry import Registry

SAMPLERS: Registry[type["Sampler"]] = Registry("sampler")


def register_sampler(name: str):
    """Class decorator registering a :class:`Sampler` subclass under ``name``."""

    def add(cls: type["Sampler"]) -> type["Sampler"]:
        SAMPLERS.register(name, cls)
        cls.name = name
        return cls

    return add


def build_sampler(name: str, **options: Any) -> "Sampler":
    """Instantiate the sampler registered as ``name`` with ``options``."""
    return SAMPLERS.get(name)(**options)


def parse_sampler_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name:key=value,key=value"`` -> ``(name, options)``; values are YAML-parsed.

    Example: ``"mar:num_iter=32,head_steps=20"`` -> ``("mar", {"num_iter": 32, "head_steps": 20})``.
    Raises ``ValueError`` naming the malformed part.
    """
    import yaml

    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"sampler option '{part}' in '{spec}' is not key=value (e.g. {name}:num_iter=32)")
        options[key.strip()] = yaml.safe_load(value)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}'; registered: {', '.join(SAMPLERS.names())}")
    return name, options


def build_sampler_with_defaults(spec: str, **defaults: Any) -> "Sampler":
    """Build ``spec`` (see :func:`parse_sampler_spec`); each ``defaults`` entry is passed only if the
    sampler's constructor takes that argument and the spec does not set it (shared CLI options such
    as ``cfg``, ``logits``, ``temperature``)."""
    import inspect

    name, options = parse_sampler_spec(spec)
    cls = SAMPLERS.get(name)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        raise ValueError(f"sampler '{name}' has no option(s) {unknown}; it takes: "
                         f"{', '.join(p for p in params if p != 'self')}")
    for key, value in defaults.items():
        if key not in options and (key in params or takes_any):
            options[key] = value
    return cls(**options)


@dataclass
class SamplerStats:
    """What a sampling call cost.

    Attributes:
        forward_passes: generator forward passes (a CFG pass over the doubled batch counts once).
        tokens: tokens generated per image.
        accepted_per_step: tokens committed per forward pass, per step (mean over the batch).
        wall_time_s: seconds spent in ``sample`` (excluding tokenizer decoding).
        decode_time_s: seconds spent decoding tokens to images.
        head_evaluations: network evaluations of a continuous-token head (diffusion/flow steps),
            each over all the tokens emitted in its step (0 for categorical heads).
        head_time_s: seconds of ``wall_time_s`` spent in such a head.
    """

    forward_passes: int = 0
    tokens: int = 0
    accepted_per_step: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    decode_time_s: float = 0.0
    head_evaluations: int = 0
    head_time_s: float = 0.0

    @property
    def tokens_per_pass(self) -> float:
        return self.tokens / max(self.forward_passes, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "forward_passes": self.forward_passes,
            "tokens": self.tokens,
            "tokens_per_pass": self.tokens_per_pass,
            "wall_time_s": self.wall_time_s,
            "decode_time_s": self.decode_time_s,
            "head_evaluations": self.head_evaluations,
            "head_time_s": self.head_time_s,
        }


@dataclass
class SampleResult:
    """Output of :meth:`Sampler.sample`.

    Attributes:
        tokens: int64 ``(B, h, w)`` token grid, or float latents ``(B, c, H, W)`` for continuous-token
            generators (scaled as the tokenizer's ``decode`` expects).
        images: float ``(B, C, H, W)`` in ``[-1, 1]`` when a tokenizer was given, else ``None``.
        stats: :class:`SamplerStats`.
    """

    tokens: torch.Tensor
    stats: SamplerStats
    images: torch.Tensor | None = None


class Sampler(abc.ABC):
    """Base class: turns a generator and a batch of conditions into tokens (and images)."""

    name: str = "sampler"

    @abc.abstractmethod
    def sample(
        self,
        generator: torch.nn.Module,
        condition: torch.Tensor,
        *,
        generator_rng: torch.Generator | None = None,
        tokenizer: torch.nn.Module | None = None,
    ) -> SampleResult:
        """Generate one image per condition row. Same ``generator_rng`` state -> same tokens."""

    @staticmethod
    def finish(tokens_BN: torch.Tensor, generator: torch.nn.Module, stats: SamplerStats, tokenizer=None) -> SampleResult:
        """Reshape tokens to the grid and decode them with ``tokenizer`` (timed) if given."""
        tokens_Bhw = tokens_BN.view(-1, *generator.order.grid_shape)
        images = None
        if tokenizer is not None:
            start = time.perf_counter()
            with torch.no_grad():
                images = tokenizer.decode(tokens_Bhw).clamp(-1, 1)
            stats.decode_time_s = time.perf_counter() - start
        return SampleResult(tokens=tokens_Bhw, stats=stats, images=images)
