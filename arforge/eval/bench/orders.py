"""``arforge bench orders``: generators of different generation orders side by side.

Each ``--models NAME=DIR`` entry is a trained generator (raster, var, mar, ...) sampled with its own
default sampler (or ``--options NAME:sampler=...``) under the shared CFG / logits settings, which
``--options NAME:cfg=...,cfg_schedule=...`` may override per model (VAR ramps its guidance
linearly over scales); any other key is an option of the model's sampler (``flowar:head_steps=5``).
The same directory may appear under several names with different options. Per model: parameters,
forward passes per image, wall time per image at each ``--batch-sizes`` entry (warm-up excluded),
speed-up over the first model measured in the same run, head evaluations per sampling call (sequential
network evaluations of a continuous-token head, each over all tokens of its step) and head time,
FID against ``--ref`` and MNIST class accuracy; video generators report per-frame FID and class
accuracy and a temporal-consistency score beside the real and the frame-shuffled clips' scores
(``--ref moving_mnist:val``). Writes ``bench.json`` and ``bench.md``.

    arforge bench orders --models raster=runs/quickstart/generator var=runs/mnist_var/generator \\
        --options var:cfg_schedule=linear --cfg 3 --ref mnist:val
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from arforge.eval.bench.registry import register_benchmark
from arforge.eval.bench.samplers import add_common_arguments, logits_from_args, sample_quality, time_sampler
from arforge.utils.io import atomic_write_text
from arforge.samplers.base import build_sampler_with_defaults
from arforge.samplers.cfg import CFGSchedule
from arforge.auto import load_generator_and_tokenizer
from arforge.samplers.logits import LogitsPipeline
from arforge.utils.device import resolve_device

log = logging.getLogger(__name__)

_OPTION_KEYS = ("sampler", "cfg", "cfg_schedule")


def parse_models(models: list[str], options: list[str]) -> list[dict[str, Any]]:
    """``NAME=DIR`` entries plus ``NAME:key=value,...`` options -> ``[{name, dir, sampler?, cfg?,
    cfg_schedule?, sampler_options}]`` (keys other than ``sampler``/``cfg``/``cfg_schedule`` are
    sampler options)."""
    entries: dict[str, dict[str, Any]] = {}
    for item in models:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise ValueError(f"--models entry '{item}' is not NAME=DIR (e.g. var=runs/mnist_var/generator)")
        if name in entries:
            raise ValueError(f"--models names must be unique; '{name}' appears twice")
        entries[name] = {"name": name, "dir": path, "sampler_options": {}}
    for item in options:
        name, colon, rest = item.partition(":")
        if not colon or name not in entries:
            raise ValueError(f"--options entry '{item}' must be NAME:key=value,... for a NAME given in --models")
        for part in filter(None, rest.split(",")):
            key, eq, value = part.partition("=")
            if not eq or not key:
                raise ValueError(f"--options '{part}' is not key=value ({', '.join(_OPTION_KEYS)} or a sampler option)")
            target = entries[name] if key in _OPTION_KEYS else entries[name]["sampler_options"]
            target[key] = yaml.safe_load(value)
    return list(entries.values())


def markdown_table(rows: list[dict[str, Any]], batch_sizes: list[int]) -> str:
    head = ["model", "family", "sampler", "params (M)", "tokens", "passes/img", "head evals/call"]
    head += [f"s/img @bs{b}" for b in batch_sizes] + [f"speed-up @bs{b}" for b in batch_sizes]
    head += [f"head s/img @bs{b}" for b in batch_sizes] + ["FID", "class acc"]
    videos = any("temporal_consistency" in row for row in rows)
    if videos:
        head += ["temporal consistency (real / shuffled)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        first = row["speed"][str(batch_sizes[0])]
        cells = [row["name"], row["family"], f"`{row['sampler']}`", f"{row['params_m']:.2f}", str(row["num_tokens"]),
                 f"{first['forward_passes_per_image']:.1f}",
                 f"{first['head_evaluations_per_call']:.0f}" if "head_evaluations_per_call" in first else "-"]
        cells += [f"{row['speed'][str(b)]['wall_time_per_image_s']:.4f}" for b in batch_sizes]
        cells += [f"{row['speed'][str(b)]['speedup_vs_first']:.2f}x" for b in batch_sizes]
        cells += [f"{row['speed'][str(b)]['head_time_per_image_s']:.4f}" if "head_time_per_image_s" in row["speed"][str(b)]
                  else "-" for b in batch_sizes]
        fid = row.get("fid", row.get("frame_fid"))
        acc = row.get("class_accuracy", row.get("frame_class_accuracy"))
        cells += [f"{fid:.2f}" if fid is not None else "-", f"{acc:.3f}" if acc is not None else "-"]
        if videos:
            tc = row.get("temporal_consistency")
            cells.append("-" if tc is None else f"{tc:.3f} ({row.get('temporal_consistency_real', float('nan')):.3f} / "
                                                f"{row.get('temporal_consistency_shuffled', float('nan')):.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_orders_bench(models: list[dict[str, Any]], *, batch_sizes: list[int], timing_images: int, num_images: int,
                     cfg: CFGSchedule, logits: LogitsPipeline, ref: str | None, classify: bool, seed: int, device: str,
                     out: Path) -> dict[str, Any]:
    """Benchmark every model entry (see :func:`parse_models`); write ``bench.json``/``bench.md`` into ``out``."""
    dev = resolve_device(device)
    rows = []
    for entry in models:
        generator, tok = load_generator_and_tokenizer(entry["dir"], None, dev)
        spec = entry.get("sampler") or getattr(generator, "default_sampler", "ar")
        if entry["sampler_options"]:
            spec += ":" + ",".join(f"{k}={v}" for k, v in entry["sampler_options"].items())
        model_cfg = CFGSchedule(float(entry.get("cfg", cfg.scale)), entry.get("cfg_schedule", cfg.kind))
        sampler = build_sampler_with_defaults(spec, cfg=model_cfg, logits=logits)
        num_classes = int(getattr(generator.config, "num_classes", 1))
        log.info("bench orders: %s (%s, sampler %s)", entry["name"], generator.model_type, spec)
        row: dict[str, Any] = {
            "name": entry["name"], "dir": entry["dir"], "family": generator.model_type, "sampler": spec,
            "cfg": {"scale": model_cfg.scale, "kind": model_cfg.kind}, "num_tokens": int(generator.num_tokens),
            "params_m": sum(p.numel() for p in generator.parameters()) / 1e6, "speed": {},
        }
        for b in batch_sizes:
            row["speed"][str(b)] = time_sampler(sampler, generator, tok, b, timing_images, num_classes, seed)
        row.update(sample_quality(sampler, generator, tok, num_images, num_classes, max(batch_sizes), seed, ref, classify))
        rows.append(row)
    for row in rows:
        for b in batch_sizes:
            row["speed"][str(b)]["speedup_vs_first"] = (rows[0]["speed"][str(b)]["wall_time_per_image_s"]
                                                        / row["speed"][str(b)]["wall_time_per_image_s"])
    result = {"logits": {"temperature": logits.temperature, "top_k": logits.top_k, "top_p": logits.top_p}, "seed": seed,
              "device": str(dev), "timing_images": timing_images, "num_images": num_images, "ref": ref,
              "torch_threads": torch.get_num_threads(), "results": rows}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench.json", json.dumps(result, indent=2))
    atomic_write_text(out / "bench.md", f"Generation-order benchmark (seed {seed}, {dev}, {torch.get_num_threads()} threads; "
                                        f"speed-up relative to `{rows[0]['name']}`)\n\n" + markdown_table(rows, batch_sizes))
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", required=True, metavar="NAME=DIR",
                   help="generators to compare (the first is the speed-up reference)")
    p.add_argument("--options", nargs="+", default=[], metavar="NAME:KEY=VALUE,...",
                   help="per-model sampler, cfg, cfg_schedule (e.g. var:cfg_schedule=linear)")
    add_common_arguments(p, batch_sizes=[1, 16])
    p.add_argument("--out", default=None, help="run folder (default: bench-orders-<time>)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"bench-orders-{time.strftime('%Y%m%d-%H%M%S')}")
    result = run_orders_bench(
        parse_models(args.models, args.options), batch_sizes=args.batch_sizes, timing_images=args.timing_images,
        num_images=args.num_images, cfg=CFGSchedule(args.cfg, args.cfg_schedule), logits=logits_from_args(args),
        ref=args.ref, classify=not args.no_classify, seed=args.seed, device=args.device, out=out)
    print((out / "bench.md").read_text())
    print(f"benchmark written to {out}")
    return 0 if result["results"] else 1


register_benchmark("orders", "generators of different orders (raster, next-scale, masked...) side by side: passes, "
                   "time, speed-up, FID", add_arguments, run)
