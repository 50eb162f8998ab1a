"""``arforge bench samplers``: plain AR vs accelerated samplers on one checkpoint, side by side.

For every sampler spec (``ar``, ``sjd``, ``zipar:window=4``, ``sjd_lantern:k=5,delta=0.1``, ...)
with the same seed, CFG and logits settings:

* speed at each ``--batch-sizes`` entry: forward passes per image (one pass serves the whole
  batch), mean tokens committed per forward pass, wall time per image (a warm-up call first,
  excluded), and the speed-up over ``ar`` measured in the same run;
* quality on ``--num-images`` class-balanced samples: FID against ``--ref`` (e.g. ``mnist:val`` or a
  statistics ``.npz``) and, for 10-class MNIST models, class accuracy by the MNIST classifier.

Writes ``bench.json`` and ``bench.md`` (a markdown table) atomically into ``--out``.

    arforge bench samplers --checkpoint runs/mnist16/generator --ref mnist:val \\
        --samplers ar sjd zipar:window=2 zipar:window=4 sjd_lantern:k=5,delta=0.1 --cfg 3.0
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arforge.eval.bench.registry import register_benchmark
from arforge.utils.io import atomic_write_text
from arforge.samplers.base import Sampler, build_sampler_with_defaults
from arforge.samplers.cfg import CFGSchedule
from arforge.auto import load_generator_and_tokenizer
from arforge.samplers.logits import LogitsPipeline
from arforge.utils.device import resolve_device
from arforge.utils.images import to_uint8

log = logging.getLogger(__name__)


def _labels(num_classes: int, count: int) -> torch.Tensor:
    return torch.arange(count) % max(num_classes, 1)


def time_sampler(sampler: Sampler, generator, tokenizer, batch_size: int, num_images: int, num_classes: int,
                 seed: int) -> dict[str, float]:
    """Warm-up call, then ``num_images`` images in batches of ``batch_size``: speed statistics
    (forward passes of the trunk per image, tokens per pass, wall time per image; for models with a
    continuous-token head also its evaluations per token and its share of the time per image)."""
    labels = _labels(num_classes, batch_size)
    sampler.sample(generator, labels, generator_rng=torch.Generator().manual_seed(seed), tokenizer=tokenizer)
    rng = torch.Generator().manual_seed(seed)
    calls = max(1, -(-num_images // batch_size))
    passes, accepted, wall, head_evals, head_time = 0, [], 0.0, 0, 0.0
    for _ in range(calls):
        t = time.perf_counter()
        out = sampler.sample(generator, labels, generator_rng=rng, tokenizer=tokenizer)
        wall += time.perf_counter() - t
        passes += out.stats.forward_passes
        accepted.append(out.stats.tokens / max(out.stats.forward_passes, 1))
        head_evals += out.stats.head_evaluations
        head_time += out.stats.head_time_s
    speed = {
        "forward_passes_per_image": passes / calls,
        "tokens_per_forward_pass": float(np.mean(accepted)),
        "wall_time_per_image_s": wall / (calls * batch_size),
    }
    if head_evals:
        speed["head_evaluations_per_call"] = head_evals / calls  # sequential, each over a whole step's tokens
        speed["head_time_per_image_s"] = head_time / (calls * batch_size)
    return speed


def sample_images(sampler: Sampler, generator, tokenizer, num_images: int, num_classes: int, batch_size: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_images`` class-balanced samples as uint8 ``(N, H, W, 3)`` and their labels."""
    labels = _labels(num_classes, num_images)
    rng = torch.Generator().manual_seed(seed)
    images = []
    for start in range(0, num_images, batch_size):
        out = sampler.sample(generator, labels[start: start + batch_size], generator_rng=rng, tokenizer=tokenizer)
        images.append(to_uint8(out.images))
    return np.concatenate(images), labels.numpy()


def sample_quality(sampler: Sampler, generator, tokenizer, num_images: int, num_classes: int, batch_size: int, seed: int,
                   ref: str | None, classify: bool) -> dict[str, float]:
    """``fid`` of ``num_images`` class-balanced samples against ``ref`` (if given) and, for 10-class
    32x32 (MNIST) models with ``classify``, ``class_accuracy`` by the MNIST classifier. Videos get
    :func:`arforge.eval.video.video_quality` instead (``ref`` = ``moving_mnist:<split>``): per-frame
    FID and class accuracy, temporal consistency of the samples, the real and the frame-shuffled clips."""
    if num_images <= 0 or (ref is None and not classify):
        return {}
    images, labels = sample_images(sampler, generator, tokenizer, num_images, num_classes, batch_size, seed)
    if images.ndim == 5:
        from arforge.eval.video import real_videos, video_quality

        real = None
        if ref is not None:
            real, _ = real_videos(ref, num_frames=images.shape[1], image_size=images.shape[2], limit=max(num_images, 100))
        return video_quality(images, labels, real, classify=classify and num_classes == 10)
    out = {}
    if ref is not None:
        from arforge.eval.generation import fid

        out["fid"] = fid(images, ref)
    if classify and num_classes == 10 and images.shape[1] == 32:
        from arforge.eval.classifier import class_accuracy, load_or_train_mnist_classifier

        out["class_accuracy"] = class_accuracy(load_or_train_mnist_classifier(), images, labels)
    return out


def markdown_table(rows: list[dict[str, Any]], batch_sizes: list[int]) -> str:
    head = ["sampler", "passes/img", "tokens/pass"]
    head += [f"s/img @bs{b}" for b in batch_sizes] + [f"speed-up @bs{b}" for b in batch_sizes] + ["FID", "class acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        first = row["speed"][str(batch_sizes[0])]
        cells = [f"`{row['sampler']}`", f"{first['forward_passes_per_image']:.1f}", f"{first['tokens_per_forward_pass']:.2f}"]
        cells += [f"{row['speed'][str(b)]['wall_time_per_image_s']:.4f}" for b in batch_sizes]
        cells += [f"{row['speed'][str(b)].get('speedup_vs_ar', float('nan')):.2f}x" for b in batch_sizes]
        cells += [f"{row['fid']:.2f}" if row.get("fid") is not None else "-",
                  f"{row['class_accuracy']:.3f}" if row.get("class_accuracy") is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_sampler_bench(checkpoint: str, *, tokenizer: str | None = None, samplers: list[str], batch_sizes: list[int],
                      timing_images: int, num_images: int, cfg: CFGSchedule, logits: LogitsPipeline, ref: str | None,
                      classify: bool, seed: int, device: str, out: Path) -> dict[str, Any]:
    """Run the benchmark and write ``bench.json`` / ``bench.md`` into ``out``; return the JSON dict."""
    dev = resolve_device(device)
    generator, tok = load_generator_and_tokenizer(checkpoint, tokenizer, dev)
    num_classes = int(getattr(generator.config, "num_classes", 1))
    specs = list(dict.fromkeys(["ar", *samplers]))
    rows = []
    for spec in specs:
        sampler = build_sampler_with_defaults(spec, cfg=cfg, logits=logits)
        log.info("bench: %s", spec)
        row: dict[str, Any] = {"sampler": spec, "speed": {}}
        for b in batch_sizes:
            row["speed"][str(b)] = time_sampler(sampler, generator, tok, b, timing_images, num_classes, seed)
        row.update(sample_quality(sampler, generator, tok, num_images, num_classes, max(batch_sizes), seed, ref, classify))
        rows.append(row)
    ar = rows[0]["speed"]
    for row in rows:
        for b in batch_sizes:
            row["speed"][str(b)]["speedup_vs_ar"] = ar[str(b)]["wall_time_per_image_s"] / row["speed"][str(b)]["wall_time_per_image_s"]
    result = {
        "checkpoint": str(checkpoint), "grid": list(generator.order.grid_hw), "num_tokens": generator.num_tokens,
        "cfg": {"scale": cfg.scale, "kind": cfg.kind}, "logits": {"temperature": logits.temperature, "top_k": logits.top_k,
                                                                   "top_p": logits.top_p},
        "seed": seed, "device": str(dev), "timing_images": timing_images, "num_images": num_images, "ref": ref,
        "torch_threads": torch.get_num_threads(), "results": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench.json", json.dumps(result, indent=2))
    atomic_write_text(out / "bench.md", f"Sampler benchmark of `{checkpoint}` (grid {generator.order.grid_hw}, "
                                        f"CFG {cfg.scale} {cfg.kind}, seed {seed}, {dev})\n\n"
                                        + markdown_table(rows, batch_sizes))
    return result


def add_common_arguments(p: argparse.ArgumentParser, batch_sizes: list[int]) -> None:
    """Options every sampling benchmark shares: batch sizes, timing/quality sample counts, FID
    reference, CFG and logits settings, seed, device."""
    p.add_argument("--batch-sizes", type=int, nargs="+", default=batch_sizes)
    p.add_argument("--timing-images", type=int, default=16, help="images timed per entry and batch size")
    p.add_argument("--num-images", type=int, default=500, help="samples for FID / class accuracy (0 = skip)")
    p.add_argument("--ref", default=None, help="FID reference: images, statistics .npz, or mnist:val (default: no FID)")
    p.add_argument("--no-classify", action="store_true", help="skip the MNIST class accuracy")
    p.add_argument("--cfg", type=float, default=1.0)
    p.add_argument("--cfg-schedule", default="constant", choices=["constant", "linear", "interval"])
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")


def logits_from_args(args: argparse.Namespace) -> LogitsPipeline:
    """The logits pipeline of the shared --temperature / --top-k / --top-p options."""
    return LogitsPipeline(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="raster generator dir (or its training run folder)")
    p.add_argument("--tokenizer", default=None, help="tokenizer dir (default: the one recorded in the generator)")
    p.add_argument("--samplers", nargs="+", default=["ar", "sjd", "zipar:window=2", "zipar:window=4", "sjd_lantern", "sjd_lantern:lam=3"],
                   metavar="NAME[:KEY=VALUE,...]", help="samplers to compare with ar (always run first)")
    add_common_arguments(p, batch_sizes=[1, 8])
    p.add_argument("--out", default=None, help="run folder (default: bench-samplers-<time>)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"bench-samplers-{time.strftime('%Y%m%d-%H%M%S')}")
    result = run_sampler_bench(
        args.checkpoint, tokenizer=args.tokenizer, samplers=args.samplers, batch_sizes=args.batch_sizes,
        timing_images=args.timing_images, num_images=args.num_images,
        cfg=CFGSchedule(args.cfg, args.cfg_schedule), logits=logits_from_args(args), ref=args.ref, classify=not args.no_classify, seed=args.seed, device=args.device, out=out)
    print((out / "bench.md").read_text())
    print(f"benchmark written to {out}")
    return 0 if result["results"] else 1


register_benchmark("samplers", "plain AR vs SJD / ZipAR / LANTERN on one checkpoint: passes, time, speed-up, FID",
                   add_arguments, run)
