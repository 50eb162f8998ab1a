"""``arforge quickstart``: the whole pipeline on the built-in MNIST, on a CPU, in minutes.

1. train a VQ tokenizer (``configs/mnist_vq.yaml``: 32x32 digits -> 8x8 tokens);
2. measure it on the validation split (PSNR, SSIM, codebook usage, perplexity; `arforge.eval.recon`);
3. train a class-conditional raster generator on the tokenizer's codes (``configs/mnist_raster.yaml``);
4. sample ``--num-per-class`` images of every digit (``samples/``: PNGs, ``grid.png``, ``samples.npz``);
5. score the samples: class accuracy by a CNN trained only on the MNIST training split, and FID
   against the validation split;
6. write ``metrics.json`` (atomically) and print the run folder.

Every stage is a public API call (``arforge.train.train``, ``arforge.samplers``, ``arforge.eval``),
so this file is also a worked example of using them together.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from arforge.auto import load_pretrained
from arforge.samplers.ar import ARSampler
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.folder import sample_to_folder
from arforge.samplers.logits import LogitsPipeline
from arforge.utils.device import resolve_device
from arforge.utils.io import atomic_write_text

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _fresh_dir(path: Path) -> Path:
    """``path`` if unused, else ``path-2``, ``path-3``, ... (never overwrites an earlier run)."""
    if not path.exists():
        return path
    i = 2
    while path.with_name(f"{path.name}-{i}").exists():
        i += 1
    return path.with_name(f"{path.name}-{i}")


def run_quickstart(
    out: str | Path = "runs/quickstart",
    *,
    device: str = "auto",
    tokenizer_config: str | Path = CONFIG_DIR / "mnist_vq.yaml",
    generator_config: str | Path = CONFIG_DIR / "mnist_raster.yaml",
    tokenizer_overrides: list[str] | None = None,
    generator_overrides: list[str] | None = None,
    num_per_class: int = 50,
    cfg_scale: float = 3.0,
    top_k: int = 0,
    top_p: float = 0.8,
    seed: int = 0,
    fid: bool = True,
) -> tuple[Path, dict]:
    """Run the pipeline into a fresh folder (``out`` or ``out-N``); return it and the metrics.

    Sampling: ``ar`` with constant CFG ``cfg_scale`` and nucleus sampling at ``top_p`` (plus
    ``top_k`` if > 0); ``seed`` seeds both trainings and the sampler."""
    from arforge.eval.classifier import class_accuracy, load_or_train_mnist_classifier, per_class_accuracy
    from arforge.eval.recon import evaluate_reconstruction
    from arforge.train.schema import load_run_config
    from arforge.train.trainer import train

    run_dir = _fresh_dir(Path(out))
    run_dir.mkdir(parents=True)
    dev = resolve_device(device)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    log.info("[1/5] training the VQ tokenizer (%s)", tokenizer_config)
    t = time.perf_counter()
    tok_cfg = load_run_config(tokenizer_config, list(tokenizer_overrides or []) + [f"train.seed={seed}"])
    tok_run = train(tok_cfg, run_dir / "tokenizer", device=device, source=str(tokenizer_config))
    timings["tokenizer_train_s"] = time.perf_counter() - t
    tokenizer = load_pretrained(tok_run.exported_model_dir, kind="tokenizer").to(dev).eval()
    tok_metrics = evaluate_reconstruction(tokenizer, "mnist:val", rfid=False, progress=False)
    log.info("tokenizer: PSNR %.2f dB, codebook usage %.1f%%", tok_metrics["psnr_db"], 100 * tok_metrics["codebook_usage"])

    log.info("[2/5] training the raster generator (%s)", generator_config)
    t = time.perf_counter()
    gen_overrides = [f"data.tokenizer={tok_run.exported_model_dir}", f"train.seed={seed}"] + list(generator_overrides or [])
    gen_cfg = load_run_config(generator_config, gen_overrides)
    gen_run = train(gen_cfg, run_dir / "generator", device=device, source=str(generator_config))
    timings["generator_train_s"] = time.perf_counter() - t
    generator = load_pretrained(gen_run.exported_model_dir, kind="generator").to(dev).eval()

    log.info("[3/5] sampling %d images per class (CFG %.1f, top-p %.2f)", num_per_class, cfg_scale, top_p)
    num_classes = generator.config.num_classes
    labels = torch.arange(num_classes).repeat_interleave(num_per_class)
    sampler = ARSampler(cfg=CFGSchedule(cfg_scale), logits=LogitsPipeline(top_k=top_k, top_p=top_p))
    t = time.perf_counter()
    sample_summary = sample_to_folder(generator, tokenizer, labels, sampler, run_dir / "samples", batch_size=100, seed=seed)
    timings["sampling_s"] = time.perf_counter() - t
    shutil.copyfile(run_dir / "samples" / "grid.png", run_dir / "grid.png")
    samples = np.load(run_dir / "samples" / "samples.npz")

    log.info("[4/5] scoring samples with the MNIST classifier")
    t = time.perf_counter()
    classifier = load_or_train_mnist_classifier(seed=0)
    accuracy = class_accuracy(classifier, samples["images"], samples["labels"])
    per_class = per_class_accuracy(classifier, samples["images"], samples["labels"])
    timings["classifier_s"] = time.perf_counter() - t

    metrics: dict = {
        "tokenizer": tok_metrics,
        "generator": {k: v for k, v in gen_run.final_metrics.items()},
        "samples": {
            "num_images": int(len(samples["labels"])),
            "cfg_scale": cfg_scale,
            "top_k": top_k,
            "top_p": top_p,
            "seed": seed,
            "class_accuracy": accuracy,
            "per_class_accuracy": {str(k): v for k, v in per_class.items()},
            "classifier_val_accuracy": float(getattr(classifier, "val_accuracy", float("nan"))),
            "forward_passes_per_image": generator.order.num_decode_steps(),
            "sampling_time_per_image_s": sample_summary["time_per_image_s"],
        },
    }
    if fid:
        log.info("[5/5] FID of the samples against the MNIST validation split")
        from arforge.eval.generation import fid as compute_fid

        t = time.perf_counter()
        metrics["samples"]["fid_vs_val"] = compute_fid(samples["images"], "mnist:val")
        metrics["samples"]["fid_note"] = f"{len(samples['images'])} samples vs the 500 MNIST validation images (cached statistics; small-N FID is biased upwards)"
        timings["fid_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all
    metrics["timings_s"] = timings
    metrics["device"] = str(dev)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    return run_dir, metrics
