"""Image folders: ``root/<class>/**/*.png|jpg|...`` (ImageNet layout) or a flat folder of images.

Classes are the sorted names of ``root``'s sub-directories (class index = position in
:attr:`ImageFolder.classes`); a folder with no sub-directories is one class, label 0. Every file is
checked once when the folder is indexed; files PIL cannot read are skipped and reported in a single
warning, so ``__getitem__`` never meets a broken file.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from arforge.data.errors import DataError
from arforge.data.transforms import load_image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")

#: folders with more files than this get a progress bar while they are verified
_PROGRESS_THRESHOLD = 2000


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _check_file(path: Path, mode: str) -> str | None:
    """``None`` if PIL can read ``path`` (header + integrity check, or a full decode), else the reason."""
    try:
        with Image.open(path) as image:
            if mode == "full":
                image.load()
            else:
                image.verify()
            width, height = image.size
        if width < 1 or height < 1:
            return f"empty image ({width}x{height})"
    except Exception as err:  # PIL raises many exception types for broken files
        return f"{type(err).__name__}: {err}"
    return None


class ImageFolder(Dataset):
    """Images under ``root``. Items: ``{"image": float32 (C, H, W) in [-1, 1], "label": int64 scalar}``.

    ``image_size``: output side in pixels (shorter side resized, centre-cropped). ``channels``: 3
    (RGB) or 1 (grayscale). ``verify``: ``fast`` (PIL ``verify``), ``full`` (decode every file,
    slow but catches truncated JPEGs) or ``none``. Raises :class:`FileNotFoundError` for a missing
    ``root`` and :class:`DataError` if it holds no readable image.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int = 256,
        channels: int = 3,
        verify: Literal["fast", "full", "none"] = "fast",
        num_threads: int = 8,
    ):
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"image folder not found: {self.root} (check data.path / data.val_path)")
        if not self.root.is_dir():
            raise DataError(f"{self.root} is not a folder: data.path of the 'folder' dataset must be a directory of images")
        self.image_size = image_size
        self.channels = channels
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        candidates: list[tuple[Path, int]] = []
        if class_dirs:
            self.classes = [p.name for p in class_dirs]
            for label, class_dir in enumerate(class_dirs):
                files = sorted(p for p in class_dir.rglob("*") if _is_image(p))
                if not files:
                    log.warning("class folder %s holds no images (class %d kept so indices stay stable)", class_dir, label)
                candidates.extend((p, label) for p in files)
            loose = [p for p in self.root.iterdir() if _is_image(p)]
            if loose:
                log.warning("ignoring %d image(s) directly in %s: with class sub-folders only those are read", len(loose), self.root)
        else:
            self.classes = [self.root.name]
            candidates = [(p, 0) for p in sorted(self.root.iterdir()) if _is_image(p)]
        if not candidates:
            raise DataError(
                f"no images found in {self.root}: expected {self.root}/<class>/*.png|jpg|... or images directly in it "
                f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
        self.skipped: list[tuple[Path, str]] = []
        if verify == "none":
            kept = candidates
        else:
            kept = self._verify(candidates, verify, num_threads)
        if not kept:
            first, why = self.skipped[0]
            raise DataError(f"none of the {len(candidates)} image files in {self.root} could be read (first: {first}: {why})")
        self.files = [p for p, _ in kept]
        self.labels = torch.tensor([label for _, label in kept], dtype=torch.int64)
        self.num_classes = len(self.classes)

    def _verify(self, candidates: list[tuple[Path, int]], mode: str, num_threads: int) -> list[tuple[Path, int]]:
        with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
            reasons = pool.map(lambda item: _check_file(item[0], mode), candidates)
            reasons = list(tqdm(reasons, total=len(candidates), desc=f"verifying {self.root.name}", unit="img",
                                disable=len(candidates) < _PROGRESS_THRESHOLD))
        kept = []
        for item, reason in zip(candidates, reasons):
            if reason is None:
                kept.append(item)
            else:
                self.skipped.append((item[0], reason))
        if self.skipped:
            first, why = self.skipped[0]
            log.warning("skipped %d unreadable image file(s) in %s (first: %s: %s)", len(self.skipped), self.root, first, why)
        return kept

    @property
    def num_skipped(self) -> int:
        """How many files were dropped because PIL could not read them."""
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        path = self.files[i]
        try:
            image_CHW = load_image(path, self.image_size, self.channels)
        except Exception as err:
            raise DataError(
                f"cannot decode {path} ({type(err).__name__}: {err}); it passed the quick check when the folder "
                "was indexed: set data.verify: full to drop such files up front"
            ) from err
        return {"image": image_CHW, "label": self.labels[i]}
