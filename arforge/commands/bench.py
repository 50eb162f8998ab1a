"""``arforge bench <benchmark> ...``: one sub-command per registered benchmark
(:mod:`arforge.eval.bench.registry`; plug-ins loaded with ``--import`` may register more)."""

from __future__ import annotations

import argparse
import importlib

from arforge.eval.bench.registry import BENCHMARKS, BUILTIN_MODULES


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
