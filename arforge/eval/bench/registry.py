"""The benchmark registry: ``arforge bench <name>`` runs the benchmark registered as ``name``.

A benchmark module calls :func:`register_benchmark` with a name, a help line, a function adding its
arguments to an ``argparse`` parser and a ``run(args) -> int``. Speed and quality targets are
checked by benchmarks (JSON + markdown written atomically), never by timed unit tests.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from arforge.registry import Registry


@dataclass(frozen=True)
class Benchmark:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")

#: modules whose import registers the built-in benchmarks
BUILTIN_MODULES = ["arforge.eval.bench.samplers", "arforge.eval.bench.orders", "arforge.eval.bench.kernels"]


def register_benchmark(name: str, help: str, add_arguments, run) -> None:
    """Make ``arforge bench name`` run ``run(args)`` with the arguments ``add_arguments`` declares."""
    BENCHMARKS.register(name, Benchmark(help, add_arguments, run))
