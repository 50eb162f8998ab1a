"""Domain classifier metric for small datasets: class accuracy of class-conditional MNIST samples.

FID on 32x32 digits says little about whether a conditional generator draws the digit it was
asked for; a digit classifier does. :class:`MNISTClassifier` is a small CNN trained **only** on
the built-in MNIST train split (:mod:`arforge.data.mnist`, 4,500 digits; the 500 validation digits
are never seen), with random-shift augmentation, in well under a minute on two CPU cores. Training
is deterministic given ``seed`` (on a given machine and thread count). The trained weights are
cached as safetensors in ``<cache>/classifiers/`` (see :mod:`arforge.eval.cache`), so the
quickstart trains it once.

Inputs are uint8 ``(N, H, W, C)`` images with ``C`` in {1, 3} (RGB is averaged to gray); 28x28
digits are zero-padded to 32x32 like :func:`~arforge.data.mnist.mnist_uint8`, other sizes resized.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from arforge.eval.cache import cache_dir
from arforge.pretrained import CheckpointError, load_state_dict_strict
from arforge.utils.io import save_safetensors

log = logging.getLogger(__name__)

NUM_CLASSES = 10
INPUT_SIZE = 32
#: bump when the architecture or training recipe changes (invalidates cached weights)
RECIPE_VERSION = "1"
#: mean / std of the padded 32x32 MNIST pixels in [0, 1]
PIXEL_MEAN, PIXEL_STD = 0.10, 0.28


class MNISTClassifier(nn.Module):
    """Small CNN: ``(B, 1, 32, 32)`` gray digits in ``[0, 1]`` -> ``(B, 10)`` logits."""

    def __init__(self, width: int = 16):
        super().__init__()

        def unit(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            unit(1, width), nn.MaxPool2d(2),  # 16x16
            unit(width, 2 * width), nn.MaxPool2d(2),  # 8x8
            unit(2 * width, 4 * width), nn.MaxPool2d(2),  # 4x4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * width * 16, 128), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(128, NUM_CLASSES))
        #: validation accuracy measured after training (set by :func:`train_mnist_classifier` / the cache)
        self.val_accuracy: float | None = None

    def forward(self, x_B1HW: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x_B1HW - PIXEL_MEAN) / PIXEL_STD))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict(self, images_NHWC: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Predicted digit for each uint8 image ``(N, H, W, C)``: int64 ``(N,)``."""
        was_training = self.training
        self.eval()
        x = to_classifier_input(images_NHWC)
        preds = [self(x[i: i + batch_size].to(self.device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return torch.cat(preds).numpy()


def to_classifier_input(images_NHWC: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` (C = 1 or 3) or ``(N, H, W)`` -> float ``(N, 1, 32, 32)`` gray in ``[0, 1]``."""
    x = torch.as_tensor(np.asarray(images_NHWC))
    if x.dtype != torch.uint8:
        raise ValueError(f"classifier inputs must be uint8 images, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, H, W, 1|3), got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().mean(dim=1, keepdim=True) / 255
    h, w = x.shape[-2:]
    if (h, w) == (28, 28):
        x = F.pad(x, (2, 2, 2, 2))
    elif (h, w) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


def _random_shift(x_B1HW: torch.Tensor, max_shift: int, rng: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero fill)."""
    b, _, h, w = x_B1HW.shape
    padded = F.pad(x_B1HW, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=rng)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(b, 1, h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(b, 1, h, w)
    return out.gather(3, cols)


def train_mnist_classifier(seed: int = 0, epochs: int = 6, batch_size: int = 64, lr: float = 3e-3,
                           max_steps: int | None = None) -> MNISTClassifier:
    """Train :class:`MNISTClassifier` on the built-in MNIST train split (CPU) and measure its val accuracy.

    All randomness (initialisation, shuffling, shifts, dropout) derives from ``seed``: the global
    torch RNG is forked for the duration, and data order and augmentation use an explicit
    ``torch.Generator``. ``max_steps`` stops early (for tests).
    """
    from arforge.data.mnist import mnist_uint8

    images, labels = mnist_uint8("train", image_size=INPUT_SIZE, channels=1)
    x_all, y_all = to_classifier_input(images), torch.from_numpy(labels)
    rng = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    saved_threads = torch.get_num_threads()
    # one thread: bitwise reproducible whatever the machine's core count, and faster for this tiny
    # network than contended multi-threading
    torch.set_num_threads(1)
    with contextlib.ExitStack() as restore:
        restore.callback(torch.set_num_threads, saved_threads)
        restore.enter_context(torch.random.fork_rng(devices=[]))
        torch.manual_seed(seed)
        model = MNISTClassifier()
        steps_per_epoch = (len(x_all) + batch_size - 1) // batch_size
        total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.2)
        model.train()
        step = 0
        while step < total:
            order = torch.randperm(len(x_all), generator=rng)
            for i in range(0, len(order), batch_size):
                if step >= total:
                    break
                idx = order[i: i + batch_size]
                loss = F.cross_entropy(model(_random_shift(x_all[idx], 2, rng)), y_all[idx], label_smoothing=0.05)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
    model.eval()
    val_images, val_labels = mnist_uint8("val", image_size=INPUT_SIZE, channels=1)
    model.val_accuracy = class_accuracy(model, val_images, val_labels)
    log.info("trained the MNIST classifier (seed %d, %d steps) in %.1f s: val accuracy %.4f",
             seed, total, time.perf_counter() - start, model.val_accuracy)
    return model


def load_or_train_mnist_classifier(cache_dir_path: str | Path | None = None, seed: int = 0) -> MNISTClassifier:
    """The cached classifier for ``seed`` (trained and cached atomically on first use), in eval mode on CPU.

    ``cache_dir_path``: directory for the weights file (default ``<arforge cache>/classifiers``).
    A cache file that does not match the architecture is retrained and replaced.
    """
    folder = Path(cache_dir_path) if cache_dir_path is not None else cache_dir("classifiers")
    path = folder / f"mnist_cnn-seed{seed}-v{RECIPE_VERSION}.safetensors"
    if path.is_file():
        model = MNISTClassifier()
        try:
            load_state_dict_strict(model, load_file(str(path)), str(path))
            with safe_open(str(path), framework="pt") as f:
                model.val_accuracy = float((f.metadata() or {}).get("val_accuracy", "nan"))
            return model.eval()
        except (CheckpointError, SafetensorError, OSError, ValueError) as err:  # damaged cache: rebuild it
            log.warning("cached MNIST classifier %s is unusable (%s); retraining", path, err)
    log.info("training the MNIST domain classifier once (cached in %s)", path)
    model = train_mnist_classifier(seed=seed)
    save_safetensors(model.state_dict(), path, metadata={"val_accuracy": f"{model.val_accuracy:.6f}",
                                                         "seed": str(seed), "recipe": RECIPE_VERSION})
    return model.eval()


def class_accuracy(classifier: MNISTClassifier, images_NHWC: np.ndarray | torch.Tensor,
                   labels_N: np.ndarray | torch.Tensor) -> float:
    """Fraction of images whose predicted digit equals ``labels`` (uint8 images ``(N, H, W, C)``)."""
    labels = np.asarray(labels_N).astype(np.int64).reshape(-1)
    if len(labels) != len(images_NHWC):
        raise ValueError(f"{len(images_NHWC)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no images to classify")
    return float((classifier.predict(images_NHWC) == labels).mean())


def per_class_accuracy(classifier: MNISTClassifier, images_NHWC: np.ndarray | torch.Tensor,
                       labels_N: np.ndarray | torch.Tensor) -> dict[int, float]:
    """``{class: accuracy}`` for every class present in ``labels``."""
    labels = np.asarray(labels_N).astype(np.int64).reshape(-1)
    if len(labels) != len(images_NHWC):
        raise ValueError(f"{len(images_NHWC)} images but {len(labels)} labels")
    correct = classifier.predict(images_NHWC) == labels
    return {int(c): float(correct[labels == c].mean()) for c in np.unique(labels)}
