"""``arforge bench <benchmark> ...``: the command-line front of the benchmarks.

A benchmark module calls :func:`register_benchmark` with a name, a help line, a function adding its
arguments to an ``argparse`` parser and a ``run(args) -> int``. Speed and quality targets are
checked here (JSON + markdown written atomically), never by timed unit tests.
"""

from __future__ import annotations

import argparse
import importlib
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
BUILTIN_MODULES = ["arforge.eval.bench.samplers", "arforge.eval.bench.orders"]


def register_benchmark(name: str, help: str, add_arguments, run) -> None:
    BENCHMARKS.register(name, Benchmark(help, add_arguments, run))


def add_parser(subparsers) -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    p = subparsers.add_parser("bench", help="speed/quality benchmarks (writes bench.json + bench.md)",
                              description="Benchmarks: " + ", ".join(BENCHMARKS.names()))
    sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name in BENCHMARKS.names():
        bench = BENCHMARKS.get(name)
        bp = sub.add_parser(name, help=bench.help, description=bench.help,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        bench.add_arguments(bp)
        bp.set_defaults(func=bench.run)
