"""``arforge quickstart``: the whole MNIST pipeline of :func:`arforge.quickstart.run_quickstart`."""

from __future__ import annotations

import argparse
import json

from arforge.quickstart import CONFIG_DIR, run_quickstart


def run(args: argparse.Namespace) -> int:
    run_dir, metrics = run_quickstart(
        args.out, device=args.device, tokenizer_config=args.tokenizer_config, generator_config=args.generator_config,
        tokenizer_overrides=args.tokenizer_set, generator_overrides=args.generator_set,
        num_per_class=args.num_per_class, cfg_scale=args.cfg, top_k=args.top_k, top_p=args.top_p, seed=args.seed, fid=not args.no_fid,
    )
    s = metrics["samples"]
    print(json.dumps({"tokenizer_psnr_db": metrics["tokenizer"]["psnr_db"], "codebook_usage": metrics["tokenizer"]["codebook_usage"],
                      "class_accuracy": s["class_accuracy"], "fid_vs_val": s.get("fid_vs_val"),
                      "total_s": metrics["timings_s"]["total_s"]}))
    print(f"quickstart run folder: {run_dir}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart", help="train tokenizer + generator on built-in MNIST, sample, score (CPU, minutes)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, description="Train a VQ tokenizer and a class-conditional raster generator on the built-in MNIST, sample every class, score the samples.",
    )
    p.add_argument("--out", default="runs/quickstart", help="run folder (a suffix -N is added if it exists)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tokenizer-config", default=str(CONFIG_DIR / "mnist_vq.yaml"))
    p.add_argument("--generator-config", default=str(CONFIG_DIR / "mnist_raster.yaml"))
    p.add_argument("--tokenizer-set", action="append", default=[], metavar="KEY=VALUE", help="override in the tokenizer config")
    p.add_argument("--generator-set", action="append", default=[], metavar="KEY=VALUE", help="override in the generator config")
    p.add_argument("--num-per-class", type=int, default=50)
    p.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--top-k", type=int, default=0, help="0 = no top-k filtering")
    p.add_argument("--top-p", type=float, default=0.8, help="nucleus sampling mass (1 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fid", action="store_true", help="skip the FID stage")
    p.set_defaults(func=run)
