"""Benchmarks run by ``arforge bench <name>``; each writes ``bench.json`` and ``bench.md`` into its run folder.

Built in: ``samplers`` (:mod:`arforge.eval.bench.samplers`). Register more with
:func:`arforge.eval.bench.commands.register_benchmark`.
"""
