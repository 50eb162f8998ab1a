"""Sampling a batch of labels into a folder: ``samples.npz`` (ADM layout), PNGs or GIFs, a grid.

The output folder is written atomically: a run that fails midway leaves any earlier folder of the
same name untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from arforge.samplers.base import Sampler
from arforge.utils.images import make_grid, make_video_grid, save_gif, save_png, to_uint8
from arforge.utils.device import module_device
from arforge.utils.io import atomic_directory


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
    device = module_device(generator)
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
