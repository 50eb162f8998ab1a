"""``arforge sample``: class-conditional sampling to PNGs, a grid and an ADM-style ``samples.npz``.

The output folder is written atomically: a run that fails midway leaves any earlier folder of the
same name untouched.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from arforge.pretrained import CheckpointError, atomic_directory, load_pretrained, read_config_file, resolve_model_dir
from arforge.samplers.base import SAMPLERS, Sampler, build_sampler_with_defaults
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.logits import LogitsPipeline
from arforge.utils.device import resolve_device
from arforge.utils.images import make_grid, make_video_grid, save_gif, save_png, to_uint8

log = logging.getLogger(__name__)


def load_generator_and_tokenizer(checkpoint: str | Path, tokenizer: str | Path | None, device: torch.device):
    """Load a generator and the tokenizer it was trained with (``extra.tokenizer_dir`` unless given)."""
    gen_dir = resolve_model_dir(checkpoint)
    generator = load_pretrained(gen_dir, kind="generator").to(device).eval()
    tok_path = tokenizer or (generator.pretrained_extra or {}).get("tokenizer_dir")
    if tok_path is None:
        raise CheckpointError(f"{gen_dir} does not record its tokenizer: pass --tokenizer DIR")
    tok_dir = resolve_model_dir(tok_path)
    if read_config_file(tok_dir)["kind"] != "tokenizer":
        raise CheckpointError(f"--tokenizer {tok_dir} is not a tokenizer checkpoint")
    tok = load_pretrained(tok_dir, kind="tokenizer").to(device).eval()
    if getattr(tok, "is_continuous", False):
        want = getattr(generator.config, "latent_channels", None)
        if want != tok.latent_channels:
            raise CheckpointError(f"tokenizer {tok_dir} has {tok.latent_channels} latent channels but generator {gen_dir} "
                                  f"expects {want}")
    elif tok.codebook_size != getattr(generator, "vocab_size", None):
        raise CheckpointError(
            f"tokenizer {tok_dir} has {tok.codebook_size} codes but generator {gen_dir} expects {generator.vocab_size}"
        )
    return generator, tok


def sample_to_folder(
    generator: torch.nn.Module,
    tokenizer: torch.nn.Module,
    labels: torch.Tensor,
    sampler: Sampler,
    out: str | Path,
    *,
    batch_size: int = 32,
    seed: int = 0,
    write_pngs: bool = True,
    extra: dict | None = None,
) -> dict:
    """Sample one image per label into ``out`` (atomically) and return the run summary.

    Writes ``samples.npz`` (``images`` uint8 ``(N, H, W, 3)``, ``labels`` int64 ``(N,)``),
    ``grid.png`` (one row per class when classes are balanced), ``samples/NNNNN_cC.png`` and
    ``sample_stats.json``. Video generators write ``images`` ``(N, T, H, W, 3)``, an animated
    ``grid.gif``, ``grid.png`` (frames side by side) and ``samples/NNNNN_cC.gif``. Randomness comes
    from one ``torch.Generator`` seeded with ``seed``.
    """
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    images, passes, wall = [], 0, 0.0
    batches = range(0, len(labels), batch_size)
    for start in tqdm(batches, desc="sampling", unit="batch", disable=len(batches) < 2):
        batch = labels[start: start + batch_size].to(device)
        result = sampler.sample(generator, batch, generator_rng=rng, tokenizer=tokenizer)
        images.append(to_uint8(result.images))
        passes += result.stats.forward_passes
        wall += result.stats.wall_time_s + result.stats.decode_time_s
    images_np = np.concatenate(images)
    labels_np = labels.cpu().numpy().astype(np.int64)
    summary = {
        "num_images": len(labels_np),
        "forward_passes_per_batch": passes / max(len(batches), 1),
        "sampling_time_s": wall,
        "time_per_image_s": wall / max(len(labels_np), 1),
        "seed": seed,
        **(extra or {}),
    }
    per_class = np.bincount(labels_np)
    nrow = int(per_class.max()) if len(set(per_class[per_class > 0])) == 1 else None
    order = np.argsort(labels_np, kind="stable")
    with atomic_directory(out) as tmp:
        np.savez(tmp / "samples.npz", images=images_np, labels=labels_np)
        if images_np.ndim == 5:  # videos (N, T, H, W, 3)
            frames = make_video_grid(images_np[order], nrow=nrow)
            save_gif(frames, tmp / "grid.gif")
            save_png(np.concatenate(list(frames), axis=1), tmp / "grid.png")
        else:
            save_png(make_grid(images_np[order], nrow=nrow), tmp / "grid.png")
        if write_pngs:
            (tmp / "samples").mkdir()
            for i, (img, lab) in enumerate(zip(images_np, labels_np)):
                if img.ndim == 4:
                    save_gif(img, tmp / "samples" / f"{i:05d}_c{lab}.gif")
                else:
                    save_png(img, tmp / "samples" / f"{i:05d}_c{lab}.png")
        (tmp / "sample_stats.json").write_text(json.dumps(summary, indent=2))
    return summary


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
