"""Composable logits processing shared by every sampler: temperature, top-k, top-p, and token draws.

A processor maps logits ``(..., V)`` to logits of the same shape (masked entries set to ``-inf``).
:class:`LogitsPipeline` chains them and turns logits into probabilities or samples. Speculative
samplers call :meth:`LogitsPipeline.probs` on drafts and targets so that acceptance uses exactly the
distribution plain sampling would draw from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from arforge.kernels.sampling import sample_from_weights, sample_tokens, seeds_from


class LogitsProcessor(Protocol):
    def __call__(self, logits: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Temperature:
    """Divide logits by ``temperature`` (> 0)."""

    temperature: float

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {self.temperature}")

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.temperature == 1.0 else logits / self.temperature


@dataclass(frozen=True)
class TopK:
    """Keep the ``k`` largest logits per row (ties at the k-th value are kept)."""

    k: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.k <= 0 or self.k >= logits.shape[-1]:
            return logits
        kth = torch.topk(logits, self.k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))


@dataclass(frozen=True)
class TopP:
    """Nucleus filtering: keep the smallest set of tokens whose probability mass reaches ``p``.

    The most likely token is always kept.
    """

    p: float

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.p >= 1.0:
            return logits
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum - sorted_logits.softmax(dim=-1) >= self.p  # mass before this token already >= p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        return logits.masked_fill(drop, float("-inf"))


@dataclass(frozen=True)
class LogitsPipeline:
    """Temperature -> top-k -> top-p (HF/LlamaGen order), then softmax / multinomial draw.

    ``greedy=True`` turns sampling into argmax (probabilities become one-hot).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False

    def processors(self) -> list[LogitsProcessor]:
        procs: list[LogitsProcessor] = []
        if not self.greedy:
            procs.append(Temperature(self.temperature))
        procs += [TopK(self.top_k), TopP(self.top_p)]
        return procs

    def process(self, logits: torch.Tensor) -> torch.Tensor:
        """Filtered float32 logits ``(..., V)``."""
        out = logits.float()
        for proc in self.processors():
            out = proc(out)
        return out

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Sampling distribution ``(..., V)`` (rows sum to 1)."""
        processed = self.process(logits)
        if self.greedy:
            return torch.nn.functional.one_hot(processed.argmax(-1), processed.shape[-1]).float()
        return processed.softmax(dim=-1)

    def sample(self, logits: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Draw one token per row: int64 ``logits.shape[:-1]``, through the fused sampling kernel
        (:func:`arforge.kernels.sampling.sample_tokens`) with one seed per row drawn from ``rng``."""
        if self.greedy:
            return self.process(logits).argmax(-1)
        seeds = seeds_from(rng, tuple(logits.shape[:-1]), logits.device)
        return sample_tokens(logits, seeds, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)


def sample_from_probs(probs: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``probs`` ``(..., V)`` -> int64 ``(...)``: an inverse-CDF lookup of a
    seeded uniform (:func:`arforge.kernels.sampling.sample_from_weights`), seeds drawn from ``rng``."""
    return sample_from_weights(probs, seeds_from(rng, tuple(probs.shape[:-1]), probs.device))
