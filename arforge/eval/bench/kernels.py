"""``arforge bench kernels``: each kernel op against the code it replaces, side by side in one run.

For every op and shape, each implementation is timed (median of ``--repeats`` calls after a warm-up)
and its peak memory measured in a fresh process (growth of the peak resident set over a baseline that
already holds the inputs):

* ``sampling`` -- one token per row of ``(B, T, V)`` guided logits with top-k and top-p:
  ``sort_multinomial`` (what :class:`~arforge.samplers.logits.LogitsPipeline` did before the kernel:
  CFG mix, ``torch.topk``, sort-based top-p, softmax, ``torch.multinomial``), ``reference`` (:func:`arforge.kernels.sampling.sample_tokens`,
  PyTorch), ``compiled_reference`` (``torch.compile`` of it, with ``--compile``), ``triton`` (CUDA);
* ``vq_nearest`` -- nearest code of ``N`` latents in a ``K x D`` codebook: ``full_matrix`` (the
  ``N x K`` distance matrix and its argmin), ``reference`` (:func:`arforge.kernels.vq.nearest_code`,
  blocked), ``triton`` (CUDA).

Shapes: the tiny CPU ones and the published ones (LlamaGen-XL: V = 16384, VQ-16 codebook 16384 x 8;
Emu3-like: V = 32768). Writes ``bench.json`` (``records``: one per op, shape and implementation with
``op``, ``shape``, ``impl``, ``ms``, ``peak_mb``) and ``bench.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from arforge.eval.bench.registry import register_benchmark
from arforge.kernels.dispatch import triton_available
from arforge.utils.io import atomic_write_text

#: (name, shape) per op; sampling shapes are (B, T, V), vq shapes (N, K, D)
SHAPES: dict[str, list[tuple[str, tuple[int, ...]]]] = {
    "sampling": [("tiny", (4, 16, 1024)), ("llamagen", (4, 16, 16384)), ("emu3", (8, 1, 32768))],
    "vq_nearest": [("tiny", (4096, 512, 8)), ("llamagen_vq16_b64", (64 * 256, 16384, 8))],
}
SAMPLING = dict(cfg_scale=3.0, temperature=1.0, top_k=1000, top_p=0.9)


def _sampling_inputs(shape: tuple[int, ...], device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    B, T, V = shape
    return {"cond": (torch.randn(B, T, V, generator=g) * 3).to(device), "uncond": (torch.randn(B, T, V, generator=g) * 3).to(device),
            "seeds": torch.arange(B * T).view(B, T).to(device)}


def _vq_inputs(shape: tuple[int, ...], device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    N, K, D = shape
    return {"z": torch.randn(N, D, generator=g).to(device), "codebook": torch.randn(K, D, generator=g).to(device)}


def sampling_impl(impl: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The sampling implementation ``impl`` as ``fn(inputs) -> tokens``."""
    from arforge.kernels.sampling import sample_tokens
    from arforge.samplers.cfg import CFGSchedule
    from arforge.samplers.logits import LogitsPipeline

    if impl == "sort_multinomial":  # what LogitsPipeline.sample did before the kernel
        pipeline = LogitsPipeline(temperature=SAMPLING["temperature"], top_k=SAMPLING["top_k"], top_p=SAMPLING["top_p"])
        rng = torch.Generator().manual_seed(0)

        def run(x):
            probs = pipeline.probs(CFGSchedule.combine(x["cond"], x["uncond"], SAMPLING["cfg_scale"]))
            flat = probs.reshape(-1, probs.shape[-1])
            return torch.multinomial(flat, 1, generator=rng if flat.device.type == "cpu" else None).view(probs.shape[:-1])
        return run
    backend = "triton" if impl == "triton" else "reference"

    def fused(x):
        return sample_tokens(x["cond"], x["seeds"], uncond=x["uncond"], backend=backend, **SAMPLING)
    return torch.compile(fused, dynamic=False) if impl == "compiled_reference" else fused


def vq_impl(impl: str) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The nearest-code implementation ``impl`` as ``fn(inputs) -> codes``."""
    from arforge.kernels.vq import nearest_code

    if impl == "full_matrix":
        def run(x):
            z, e = x["z"], x["codebook"]
            return (z.square().sum(1, keepdim=True) + e.square().sum(1) - 2.0 * z @ e.t()).argmin(1)
        return run
    backend = "triton" if impl == "triton" else "reference"
    return lambda x: nearest_code(x["z"], x["codebook"], backend=backend)


OPS = {"sampling": (_sampling_inputs, sampling_impl), "vq_nearest": (_vq_inputs, vq_impl)}


def implementations(op: str, device: str, compile: bool) -> list[str]:
    base = {"sampling": ["sort_multinomial", "reference"], "vq_nearest": ["full_matrix", "reference"]}[op]
    if compile and op == "sampling":
        base.append("compiled_reference")
    if device.startswith("cuda") and triton_available():
        base.append("triton")
    return base


def time_ms(fn: Callable[[], Any], repeats: int, device: str) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls (after one warm-up)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


_PEAK_SCRIPT = """
import json, sys, torch
from arforge.eval.bench.kernels import OPS
op, impl, shape, device = sys.argv[1], sys.argv[2], tuple(json.loads(sys.argv[3])), sys.argv[4]
torch.set_num_threads(int(sys.argv[5]))
make_inputs, make_impl = OPS[op]
x = make_inputs(shape, device)
fn = make_impl(impl)
if device.startswith("cuda"):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated(); fn(x); torch.cuda.synchronize()
    print(json.dumps((torch.cuda.max_memory_allocated() - base) / 2**20))
else:
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])
    before = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM) to the current one
    fn(x)
    print(json.dumps((status("VmHWM:") - before) / 1024))
"""


def peak_mb(op: str, impl: str, shape: tuple[int, ...], device: str) -> float | None:
    """Peak memory (MB) one call adds, measured in a fresh process; ``None`` if that process failed.
    CPU (Linux): growth of the peak resident set over the resident set before the call (``VmHWM``,
    reset through ``/proc/self/clear_refs``); CUDA: ``max_memory_allocated`` growth."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, op, impl, json.dumps(list(shape)), device,
                          str(torch.get_num_threads())], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def estimate_mb(op: str, impl: str, shape: tuple[int, ...]) -> float:
    """What the op's largest temporaries need by construction (float32), for shapes not run."""
    if op == "vq_nearest":
        N, K, _ = shape
        return (N * K if impl == "full_matrix" else min(N, (32 * 2**20) // (4 * K)) * K) * 4 / 2**20
    B, T, V = shape
    return (6 if impl == "sort_multinomial" else 3) * B * T * V * 4 / 2**20


def run_kernel_bench(ops: list[str], sizes: list[str], device: str = "cpu", repeats: int = 5, compile: bool = False,
                     measure_memory: bool = True, out: Path | None = None) -> dict[str, Any]:
    """Time every implementation of ``ops`` at the named shapes ``sizes``; write ``bench.json`` / ``bench.md``."""
    records = []
    for op in ops:
        make_inputs, make_impl = OPS[op]
        for name, shape in SHAPES[op]:
            if name not in sizes:
                continue
            x = make_inputs(shape, device)
            for impl in implementations(op, device, compile):
                ms = time_ms(functools.partial(make_impl(impl), x), repeats, device)
                record = {"op": op, "shape": list(shape), "shape_name": name, "impl": impl, "ms": ms,
                          "peak_mb": peak_mb(op, impl, shape, device) if measure_memory else None,
                          "estimated_mb": estimate_mb(op, impl, shape)}
                records.append(record)
            del x
    for r in records:  # speed-up over the first (today's) implementation of the same op and shape
        base = next(b for b in records if b["op"] == r["op"] and b["shape"] == r["shape"])
        r["speedup"] = base["ms"] / r["ms"]
    result = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats,
              "sampling_settings": SAMPLING, "triton": "run" if device.startswith("cuda") and triton_available()
              else "not run (no CUDA device: Triton kernels are checked against the reference under TRITON_INTERPRET=1 in the tests)",
              "records": records}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "bench.json", json.dumps(result, indent=2))
        atomic_write_text(out / "bench.md", markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Kernel benchmark ({result['device']}, torch {result['torch']}, {result['threads']} threads, median of "
             f"{result['repeats']}; Triton: {result['triton']})", "",
             "| op | shape | impl | ms | speed-up | peak MB (measured) | MB (by construction) |", "|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
        lines.append(f"| {r['op']} | {r['shape_name']} {tuple(r['shape'])} | `{r['impl']}` | {r['ms']:.2f} | "
                     f"{r['speedup']:.2f}x | {peak} | {r['estimated_mb']:.1f} |")
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    p.add_argument("--sizes", nargs="+", default=["tiny", "llamagen", "llamagen_vq16_b64"],
                   help=f"named shapes: {', '.join(sorted({n for s in SHAPES.values() for n, _ in s}))}")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the references")
    p.add_argument("--no-memory", action="store_true", help="skip the per-implementation peak-memory processes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = torch's default); 1 is steadier on a shared CPU")
    p.add_argument("--out", default=None, help="run folder (default: bench-kernels-<time>)")


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    out = Path(args.out or f"bench-kernels-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run_kernel_bench(args.ops, args.sizes, device=args.device, repeats=args.repeats, compile=args.compile,
                     measure_memory=not args.no_memory, out=out)
    print((out / "bench.md").read_text())
    print(f"benchmark written to {out}")
    return 0


register_benchmark("kernels", "kernel ops vs the code they replace: time, speed-up and peak memory per shape",
                   add_arguments, run)
