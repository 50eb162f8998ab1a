"""Video sample metrics: per-frame class accuracy, per-frame FID and a temporal-consistency score.

Videos are uint8 ``(N, T, H, W, 3)`` arrays (what :func:`arforge.utils.images.to_uint8` returns for
``(B, T, C, H, W)`` tensors). Frames of moving-digit videos are classified by the MNIST classifier
after cropping a 32x32 window centred on the frame's ink (the digit occupies a small part of the
canvas). The **temporal-consistency score** is the mean, over consecutive frame pairs, of the best
normalised cross-correlation between frame ``t + 1`` and frame ``t`` shifted by up to ``max_shift``
pixels: 1 for a rigid motion of at most ``max_shift`` pixels per frame, lower when the content
changes or jumps. It is reported next to the same score of real videos and of real videos with their
frames shuffled, which bound it from above and below.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CROP = 32


def _gray(videos_NTHWC: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(videos_NTHWC))
    if x.dtype != torch.uint8 or x.ndim != 5:
        raise ValueError(f"expected uint8 videos (N, T, H, W, C), got {tuple(x.shape)} {x.dtype}")
    return x.float().mean(-1) / 255.0


def ink_crops(frames_NHW: torch.Tensor, size: int = CROP) -> torch.Tensor:
    """``size x size`` windows centred on each frame's intensity centroid (zero padded): ``(N, size, size)``."""
    N, H, W = frames_NHW.shape
    mass = frames_NHW.sum((1, 2)).clamp_min(1e-6)
    ys = (frames_NHW.sum(2) * torch.arange(H)).sum(1) / mass
    xs = (frames_NHW.sum(1) * torch.arange(W)).sum(1) / mass
    padded = F.pad(frames_NHW, (size, size, size, size))
    top = (ys.round().long() - size // 2 + size).clamp(0, H + size)
    left = (xs.round().long() - size // 2 + size).clamp(0, W + size)
    rows = top[:, None] + torch.arange(size)
    cols = left[:, None] + torch.arange(size)
    return padded[torch.arange(N)[:, None, None], rows[:, :, None], cols[:, None, :]]


def frame_class_accuracy(classifier, videos_NTHWC: np.ndarray, labels_N: np.ndarray) -> float:
    """Fraction of frames the MNIST classifier assigns to their video's label (ink-centred crops)."""
    gray = _gray(videos_NTHWC)
    N, T = gray.shape[:2]
    crops = (ink_crops(gray.flatten(0, 1)) * 255).round().to(torch.uint8)
    pred = classifier.predict(crops.numpy())
    return float((pred == np.repeat(np.asarray(labels_N), T)).mean())


def temporal_consistency(videos_NTHWC: np.ndarray, max_shift: int = 6) -> float:
    """Mean best-shift normalised cross-correlation of consecutive frames (see the module docstring)."""
    gray = _gray(videos_NTHWC)
    if gray.shape[1] < 2:
        raise ValueError("temporal consistency needs videos of at least 2 frames")
    prev, nxt = gray[:, :-1].flatten(0, 1), gray[:, 1:].flatten(0, 1)

    def normalise(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean((1, 2), keepdim=True)
        return x / x.flatten(1).norm(dim=1).clamp_min(1e-6)[:, None, None]

    nxt_n = normalise(nxt)
    best = torch.full((prev.shape[0],), -1.0)
    padded = F.pad(prev, (max_shift,) * 4)
    H, W = prev.shape[-2:]
    for dy in range(2 * max_shift + 1):
        for dx in range(2 * max_shift + 1):
            shifted = normalise(padded[:, dy:dy + H, dx:dx + W])
            best = torch.maximum(best, (shifted * nxt_n).sum((1, 2)))
    return float(best.mean())


def shuffle_frames(videos_NTHWC: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each video with its frames in a random order that moves every frame (a derangement)."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(videos_NTHWC)
    T = videos_NTHWC.shape[1]
    for i, video in enumerate(videos_NTHWC):
        perm = rng.permutation(T)
        while T > 1 and (perm == np.arange(T)).any():
            perm = rng.permutation(T)
        out[i] = video[perm]
    return out


def video_quality(videos_NTHWC: np.ndarray, labels_N: np.ndarray, real_NTHWC: np.ndarray | None = None,
                  classify: bool = True, fid: bool = True) -> dict[str, float]:
    """``frame_class_accuracy`` (MNIST classifier), ``temporal_consistency`` and, with real videos,
    their ``temporal_consistency_real`` / ``temporal_consistency_shuffled`` and the per-frame ``frame_fid``
    (all generated frames against all real frames)."""
    out = {"temporal_consistency": temporal_consistency(videos_NTHWC)}
    if classify:
        from arforge.eval.classifier import load_or_train_mnist_classifier

        out["frame_class_accuracy"] = frame_class_accuracy(load_or_train_mnist_classifier(), videos_NTHWC, labels_N)
    if real_NTHWC is not None:
        out["temporal_consistency_real"] = temporal_consistency(real_NTHWC)
        out["temporal_consistency_shuffled"] = temporal_consistency(shuffle_frames(real_NTHWC))
        if fid:
            from arforge.eval.generation import fid as frechet

            out["frame_fid"] = frechet(np.ascontiguousarray(videos_NTHWC.reshape(-1, *videos_NTHWC.shape[2:])),
                                       np.ascontiguousarray(real_NTHWC.reshape(-1, *real_NTHWC.shape[2:])))
    return out


def real_videos(name: str = "moving_mnist:val", num_frames: int = 5, image_size: int = 64, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real clips of a built-in video dataset as uint8 ``(N, T, H, W, 3)`` and labels (``moving_mnist:<split>``)."""
    dataset, _, split = name.partition(":")
    if dataset != "moving_mnist":
        raise ValueError(f"unknown video reference '{name}'; use moving_mnist:<split>")
    from arforge.data.moving_mnist import MovingMNIST

    data = MovingMNIST(split or "val", num_frames=num_frames, canvas=image_size, channels=1)
    n = len(data) if limit is None else min(limit, len(data))
    clips = np.stack([data.clip_uint8(i) for i in range(n)])
    return np.repeat(clips[..., None], 3, axis=-1), data.labels[:n].numpy()
