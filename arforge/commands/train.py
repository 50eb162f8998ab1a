"""``arforge train CONFIG``: run a training config into a run folder (checkpoints, metrics, exported model)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from arforge.train.schema import RunConfig, load_run_config

log = logging.getLogger(__name__)


def default_out_dir(config_path: str | Path, cfg: RunConfig) -> Path:
    """``train.out_dir`` from the config, else ``runs/<config file stem>``."""
    if cfg.train.out_dir:
        return Path(cfg.train.out_dir)
    return Path("runs") / Path(config_path).stem


def run(args: argparse.Namespace) -> int:
    """Load the config (+ ``--set`` overrides), train into the run folder and print its path."""
    from arforge.train.trainer import train

    cfg = load_run_config(args.config, args.overrides)
    out_dir = Path(args.out) if args.out else default_out_dir(args.config, cfg)
    result = train(cfg, out_dir, resume=args.resume, device=args.device, source=str(args.config))
    log.info("exported model: %s", result.exported_model_dir)
    print(f"run folder: {result.out_dir}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to ``subparsers`` (sets ``func``)."""
    p = subparsers.add_parser(
        "train",
        help="train a tokenizer or generator from a YAML config",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Train the task in CONFIG (sections task, data, optim, train). Writes config.yaml, metrics.jsonl, "
            "checkpoints/ and the exported model/ into the run folder, whose path is printed at the end."
        ),
    )
    p.add_argument("config", help="run config YAML file")
    p.add_argument("--out", default=None, help="run folder (default: train.out_dir from the config, else runs/<config stem>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, YAML-parsed, e.g. --set train.steps=100 optim.lr=1e-3")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train")
    p.set_defaults(func=run)
    return p
