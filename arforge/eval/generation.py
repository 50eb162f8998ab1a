"""Generation metrics in one pass: FID, sFID, KID, precision/recall and Inception Score.

:func:`evaluate_generation` streams the samples (and the reference, unless it is a statistics
file) through the Inception once, accumulating ``mu``/``sigma`` on the fly; only the metrics that
need per-image features (KID, precision/recall: ``N x 2048`` floats; IS: ``N x 1008``) keep them.

Reference forms: any image source (folder, ``.npz``/``.npy`` images, array, or ``mnist:<split>``,
whose statistics are computed once and cached) or a statistics ``.npz`` (the output of
``arforge eval stats``, or an ADM reference batch). An ADM batch holds both: its stored
``mu``/``sigma`` are used for FID/sFID (the published protocol), its ``arr_0`` images for KID and
precision/recall.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from arforge.eval.cache import cache_dir
from arforge.eval.features import DEFAULT_BATCH_SIZE, InceptionFeatureExtractor, build_feature_extractor, iter_features
from arforge.eval.frechet import fid_from_stats
from arforge.eval.inception_score import inception_score
from arforge.eval.kid import kernel_inception_distance
from arforge.eval.precision_recall import precision_recall
from arforge.eval.sources import ImageSource, open_source
from arforge.eval.stats import (
    STATS_KEYS, GaussianStats, RunningStats, is_stats_file, load_stats, npz_keys, save_stats,
)

log = logging.getLogger(__name__)

#: metric name -> the Inception feature it needs
METRICS = {"fid": "pool3", "sfid": "spatial", "kid": "pool3", "pr": "pool3", "is": "logits_unbiased"}
#: metrics that need every image's features of both sets (not just statistics)
PER_IMAGE_METRICS = ("kid", "pr")
#: bump to invalidate cached statistics of built-in datasets
STATS_CACHE_VERSION = "1"

Source = ImageSource | str | Path | np.ndarray | torch.Tensor


@dataclass
class SourceSummary:
    """What one pass over an image source produced."""

    stats: dict[str, GaussianStats] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    num_images: int = 0
    skipped: int = 0
    seconds: float = 0.0
    description: str = ""


def summarize_source(
    source: Source,
    extractor: InceptionFeatureExtractor,
    stats_for: Sequence[str] = ("pool3",),
    keep: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    desc: str | None = None,
) -> SourceSummary:
    """One streamed pass: Gaussian statistics of the features in ``stats_for``, full arrays of those in ``keep``."""
    src = open_source(source)
    running: dict[str, RunningStats] = {}
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in keep}
    n, start = 0, time.perf_counter()
    for feats in iter_features(src, extractor, batch_size, progress, desc):
        for name in stats_for:
            if name not in running:
                running[name] = RunningStats(feats[name].shape[1])
            running[name].update(feats[name])
        for name in keep:
            kept[name].append(feats[name])
        n += len(next(iter(feats.values())))
    if n == 0:
        raise ValueError(f"{src.description} yielded no readable images")
    return SourceSummary(
        stats={name: acc.finalize() for name, acc in running.items()},
        features={name: torch.cat(parts).numpy() for name, parts in kept.items()},
        num_images=n, skipped=src.skipped, seconds=time.perf_counter() - start, description=src.description,
    )


def _is_builtin(ref: Source | None) -> bool:
    return isinstance(ref, str) and ref.startswith("mnist:")


def builtin_reference_stats(
    name: str,
    extractor: InceptionFeatureExtractor,
    needed: Sequence[str] = ("pool3",),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> dict[str, GaussianStats]:
    """Statistics of a built-in dataset (``"mnist:<split>"``), computed once per preprocessing mode and cached.

    The file lives in ``<cache>/stats/`` and holds every statistic the extractor can produce among
    ``pool3``/``spatial``; it is recomputed if a needed one is missing.
    """
    path = cache_dir("stats") / f"{name.replace(':', '-')}-{extractor.mode}-v{STATS_CACHE_VERSION}.npz"
    if path.is_file():
        try:
            stats = load_stats(path, expected_features=extractor.name)
            if set(needed) <= set(stats):
                return stats
        except (OSError, ValueError) as err:
            log.warning("cached statistics %s are unusable (%s); recomputing", path, err)
    available = [f for f in STATS_KEYS if f in extractor.features]
    log.info("computing Inception statistics of %s once (cached in %s)", name, path)
    summary = summarize_source(name, extractor, available, (), batch_size, progress, f"statistics of {name}")
    save_stats(path, summary.stats, extractor.name)
    return summary.stats


def _check_metrics(metrics: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(m.lower() for m in metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or metrics}; choose from {', '.join(METRICS)}")
    return names


def evaluate_generation(
    samples: Source,
    ref: Source | None = None,
    metrics: Sequence[str] = ("fid",),
    *,
    mode: str = "tf",
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = "auto",
    inception_weights: str | None = None,
    extractor: InceptionFeatureExtractor | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    pr_k: int = 3,
    ref_from_images: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``samples`` against ``ref`` with ``metrics`` (``fid``, ``sfid``, ``kid``, ``pr``, ``is``).

    ``samples``/``ref``: image sources (see :func:`arforge.eval.sources.open_source`); ``ref`` may
    also be a statistics ``.npz`` (FID/sFID only, unless it also holds ``arr_0`` images).
    ``ref_from_images`` recomputes an ADM batch's statistics from its images instead of using the
    stored ones. ``mode`` is the preprocessing protocol (``"tf"`` = torch-fidelity/TTUR/ADM,
    ``"pytorch-fid"``). Returns a flat dict of metric values plus counts, timing and settings.
    """
    names = _check_metrics(metrics)
    ref_metrics = [m for m in names if m != "is"]
    if ref_metrics and ref is None:
        raise ValueError(f"{', '.join(ref_metrics)} need a reference (--ref): images or a statistics .npz")
    needed = {METRICS[m] for m in names}
    if extractor is None:
        extractor = build_feature_extractor(mode, sorted(needed), inception_weights, device)
    missing = needed - set(extractor.features)
    if missing:
        raise ValueError(f"the feature extractor does not compute {sorted(missing)}, needed for {names}")

    # settle the reference first, so a bad --ref fails before minutes of sample extraction
    real_stats: dict[str, GaussianStats] = {}
    ref_info: dict[str, Any] = {}
    compute_stats: list[str] = []
    keep: list[str] = []
    ref_source: ImageSource | None = None
    if ref_metrics:
        per_image = [m for m in ref_metrics if m in PER_IMAGE_METRICS]
        compute_stats = sorted({METRICS[m] for m in ref_metrics if m in ("fid", "sfid")})
        keep = ["pool3"] if per_image else []
        if isinstance(ref, (str, Path)) and not _is_builtin(ref) and is_stats_file(ref):
            keys = npz_keys(ref)
            has_images = "arr_0" in keys or "images" in keys
            if per_image and not has_images:
                raise ValueError(
                    f"{', '.join(per_image)} need the reference images, but {ref} holds only statistics "
                    f"(arrays: {keys}); pass the reference images instead (ADM reference batches include them as arr_0)"
                )
            if not (ref_from_images and has_images):
                real_stats = load_stats(ref, expected_features=extractor.name)
                if "sfid" in ref_metrics and "spatial" not in real_stats:
                    raise ValueError(f"sFID needs spatial statistics (mu_s, sigma_s), which {ref} does not hold")
                ref_info = {"reference": str(ref), "reference_stats": "stored",
                            "num_reference": real_stats["pool3"].num_images}
                compute_stats = []
        if compute_stats and not keep and _is_builtin(ref):
            ref_info = {"reference": str(ref), "reference_stats": "cached"}
        elif compute_stats or keep:
            ref_source = open_source(ref)
    sample_source = open_source(samples)

    result: dict[str, Any] = {"features": extractor.name}
    sample_stats_for = sorted({METRICS[m] for m in names if m in ("fid", "sfid")})
    sample_keep = sorted({METRICS[m] for m in names if m in (*PER_IMAGE_METRICS, "is")})
    fake = summarize_source(sample_source, extractor, sample_stats_for, sample_keep, batch_size, progress, "samples")
    result.update(num_samples=fake.num_images, samples_skipped=fake.skipped, samples=fake.description,
                  extraction_images_per_s=fake.num_images / max(fake.seconds, 1e-9))

    real_features: dict[str, np.ndarray] = {}
    if ref_info.get("reference_stats") == "cached":
        real_stats = builtin_reference_stats(str(ref), extractor, compute_stats, batch_size, progress)
        ref_info["num_reference"] = next(iter(real_stats.values())).num_images
    elif ref_source is not None:
        real = summarize_source(ref_source, extractor, compute_stats, keep, batch_size, progress, "reference")
        real_stats.update(real.stats)
        real_features = real.features
        ref_info.setdefault("reference_stats", "computed")
        ref_info.update(reference=real.description, num_reference=real.num_images, reference_skipped=real.skipped)
    result.update(ref_info)

    for m in names:
        if m == "fid":
            result["fid"] = fid_from_stats(fake.stats["pool3"], real_stats["pool3"])
        elif m == "sfid":
            result["sfid"] = fid_from_stats(fake.stats["spatial"], real_stats["spatial"])
        elif m == "kid":
            result.update(kernel_inception_distance(fake.features["pool3"], real_features["pool3"],
                                                    subsets=kid_subsets, subset_size=kid_subset_size))
        elif m == "pr":
            result.update(precision_recall(real_features["pool3"], fake.features["pool3"], k=pr_k))
        elif m == "is":
            result.update(inception_score(fake.features["logits_unbiased"], splits=min(is_splits, fake.num_images)))
    if "fid" in names and min(result["num_samples"], result.get("num_reference") or 1 << 30) < 2048:
        log.info("FID from fewer than 2048 images per side is biased upwards; compare it only at equal counts")
    return result


def compute_reference_stats(
    source: Source,
    out: str | Path,
    *,
    mode: str = "tf",
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = "auto",
    inception_weights: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute pool3 and spatial statistics of ``source`` once and save them to ``out`` (ADM-style ``.npz``)."""
    extractor = build_feature_extractor(mode, ("pool3", "spatial"), inception_weights, device)
    summary = summarize_source(source, extractor, tuple(STATS_KEYS), (), batch_size, progress, "statistics")
    path = save_stats(out, summary.stats, extractor.name)
    return {"stats": str(path), "source": summary.description, "num_images": summary.num_images,
            "skipped": summary.skipped, "features": extractor.name,
            "extraction_images_per_s": summary.num_images / max(summary.seconds, 1e-9)}


def fid(samples: Source, ref: Source, **kwargs: Any) -> float:
    """FID of ``samples`` against ``ref`` (images or statistics); keyword arguments as :func:`evaluate_generation`."""
    return float(evaluate_generation(samples, ref, ("fid",), **kwargs)["fid"])
