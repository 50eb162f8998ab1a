"""``arforge sample``: class-conditional sampling to PNGs, a grid and an ADM-style ``samples.npz``
(:func:`arforge.samplers.folder.sample_to_folder`), with the sampler and its options from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from arforge.auto import load_generator_and_tokenizer
from arforge.pretrained import resolve_model_dir
from arforge.samplers.base import SAMPLERS, Sampler, build_sampler_with_defaults
from arforge.samplers.folder import sample_to_folder
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.logits import LogitsPipeline
from arforge.utils.device import resolve_device

log = logging.getLogger(__name__)


def sampler_from_args(args: argparse.Namespace, generator: torch.nn.Module | None = None) -> Sampler:
    """Build the sampler ``--sampler NAME[:key=value,...]`` (default: the generator's ``default_sampler``,
    else ``ar``) with the shared CFG / logits / temperature options (each passed only if that sampler takes it)."""
    cfg = CFGSchedule(scale=args.cfg, kind=args.cfg_schedule, start=args.cfg_interval[0], end=args.cfg_interval[1])
    logits = LogitsPipeline(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)
    spec = args.sampler or getattr(generator, "default_sampler", "ar")
    return build_sampler_with_defaults(spec, cfg=cfg, logits=logits, temperature=args.temperature)


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """CFG and logits options shared by every command that samples."""
    parser.add_argument("--sampler", default=None, metavar="NAME[:KEY=VALUE,...]",
                        help=f"decoding algorithm ({', '.join(SAMPLERS.names())}) and its options, e.g. mar:num_iter=32 "
                             "(default: the generator's own, e.g. ar for raster, mar for MAR)")
    parser.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--cfg-schedule", default="constant", choices=["constant", "linear", "interval"])
    parser.add_argument("--cfg-interval", type=float, nargs=2, default=(0.0, 1.0), metavar=("START", "END"),
                        help="fraction of tokens during which CFG applies (schedule 'interval')")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0, help="0 = no top-k filtering")
    parser.add_argument("--top-p", type=float, default=1.0, help="1 = no nucleus filtering")
    parser.add_argument("--greedy", action="store_true", help="argmax instead of sampling")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    generator, tokenizer = load_generator_and_tokenizer(args.checkpoint, args.tokenizer, device)
    num_classes = getattr(generator.config, "num_classes", 1)
    classes = args.classes if args.classes is not None else list(range(num_classes))
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"--classes {bad} out of range: this generator has {num_classes} classes (0..{num_classes - 1})")
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(args.num_per_class)
    sampler = sampler_from_args(args, generator)
    out = Path(args.out) if args.out else resolve_model_dir(args.checkpoint).parent / f"samples-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = sample_to_folder(
        generator, tokenizer, labels, sampler, out, batch_size=args.batch_size, seed=args.seed,
        write_pngs=not args.no_png, extra={"sampler": args.sampler or sampler.name, "cfg": args.cfg, "cfg_schedule": args.cfg_schedule,
                                           "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p},
    )
    print(json.dumps(summary))
    log.info("wrote %d samples to %s", summary["num_images"], out)
    print(f"samples written to {out}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="sample images from a trained generator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Class-conditional sampling: writes PNGs, grid.png and samples.npz (images N,H,W,3 uint8; labels N).",
    )
    p.add_argument("--checkpoint", required=True, help="generator dir (or a training run folder with model/)")
    p.add_argument("--tokenizer", default=None, help="tokenizer dir (default: the one recorded in the generator)")
    p.add_argument("--classes", type=int, nargs="+", default=None, help="class ids (default: every class)")
    p.add_argument("--num-per-class", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint>/../samples-<time>)")
    p.add_argument("--no-png", action="store_true", help="skip the per-image PNGs")
    add_sampling_options(p)
    p.set_defaults(func=run)
