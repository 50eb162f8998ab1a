"""Image sources for evaluation: folders, ``.npz``/``.npy`` files, arrays, built-in MNIST, streamed.

Every source yields batches as lists of uint8 RGB arrays ``(H, W, 3)``; images in one batch may
have different sizes (the Inception preprocessing resizes each to 299x299 anyway). Grayscale
images are repeated to RGB and an alpha channel is dropped (what ``PIL.Image.convert("RGB")`` does
for the files pytorch-fid and torch-fidelity read).

* a **folder** is searched recursively for image files (sorted paths); files that cannot be decoded
  are skipped, counted (``source.skipped``) and reported in one warning;
* an **.npz** file is read from its ``images`` or ``arr_0`` entry (ADM batches and ``arforge sample``'s
  ``samples.npz``) a batch at a time straight from the zip member, so a 50k-image file never sits
  in memory; a **.npy** file is memory-mapped;
* a **uint8 array or tensor** ``(N, H, W, C)``, ``(N, C, H, W)`` or ``(N, H, W)``;
* ``"mnist:train"`` / ``"mnist:val"`` / ``"mnist:all"``: the built-in MNIST at 32x32 RGB.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: keys searched, in order, for images in an .npz file
NPZ_IMAGE_KEYS = ("images", "arr_0")


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 -> contiguous ``(H, W, 3)`` uint8."""
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image (H, W) or (H, W, 1|3|4), got shape {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


class ImageSource(abc.ABC):
    """A finite, re-iterable stream of uint8 RGB images."""

    #: human-readable origin (a path or a short description), used in logs and metrics.json
    description: str = ""
    #: images that could not be read in the last pass (only folders can have any)
    skipped: int = 0

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items the source will try to yield (before skipping unreadable ones)."""

    @abc.abstractmethod
    def iter_batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        """Yield lists of at most ``batch_size`` uint8 ``(H, W, 3)`` arrays, in a fixed order."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, n={len(self)})"


class ArraySource(ImageSource):
    """Images held in (or memory-mapped as) one uint8 array or tensor."""

    def __init__(self, images: np.ndarray | torch.Tensor, description: str = "array"):
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        if not isinstance(images, np.ndarray):
            raise ValueError(f"expected a uint8 numpy array or torch tensor, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 in [0, 255], got {images.dtype}; convert float images in [-1, 1] with "
                "arforge.utils.images.to_uint8 (or (x * 255).round() for [0, 1])"
            )
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"expected images (N, H, W, C), (N, C, H, W) or (N, H, W), got shape {images.shape}")
        if images.shape[-1] not in (1, 3, 4):
            if images.shape[1] not in (1, 3, 4):
                raise ValueError(f"cannot find the channel axis (1, 3 or 4 channels) in image array of shape {images.shape}")
            images = images.transpose(0, 2, 3, 1)  # NCHW -> NHWC (a view)
        if len(images) == 0:
            raise ValueError(f"{description} holds no images")
        self.images = images
        self.description = description

    def __len__(self) -> int:
        return len(self.images)

    def iter_batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        self.skipped = 0
        for start in range(0, len(self.images), batch_size):
            yield [to_rgb_uint8(np.asarray(im)) for im in self.images[start: start + batch_size]]


def _read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unsupported .npy format version {version}")


class NpzSource(ImageSource):
    """The image array of an ``.npz`` file (``images`` or ``arr_0``), streamed from the zip member."""

    def __init__(self, path: str | Path, key: str | None = None):
        self.path = Path(path)
        self.description = str(self.path)
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        except zipfile.BadZipFile as err:
            raise ValueError(f"{self.path} is not a valid .npz file ({err})") from err
        candidates = [key] if key else [k for k in NPZ_IMAGE_KEYS if k in names]
        if not candidates or candidates[0] not in names:
            what = f"'{key}'" if key else " or ".join(f"'{k}'" for k in NPZ_IMAGE_KEYS)
            stats_hint = " (it holds Inception statistics: use it as a reference, not as images)" if "mu" in names else ""
            raise ValueError(f"{self.path} has no image array {what}; its arrays: {names}{stats_hint}")
        self.key = candidates[0]
        with self._open() as f:
            shape, fortran, dtype = _read_npy_header(f)
        if dtype != np.uint8:
            raise ValueError(f"{self.path}['{self.key}'] has dtype {dtype}; images must be uint8 in [0, 255]")
        if len(shape) not in (3, 4):
            raise ValueError(f"{self.path}['{self.key}'] has shape {shape}; expected (N, H, W, C) or (N, H, W)")
        if len(shape) == 4 and shape[-1] not in (1, 3, 4):
            raise ValueError(f"{self.path}['{self.key}'] has shape {shape}; images must be channel-last (N, H, W, C)")
        if shape[0] == 0:
            raise ValueError(f"{self.path}['{self.key}'] holds no images")
        self.shape, self.fortran = tuple(shape), fortran

    @contextlib.contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.key}.npy") as member:
            yield member

    def __len__(self) -> int:
        return self.shape[0]

    def iter_batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        self.skipped = 0
        if self.fortran:  # rare: cannot stream row blocks, fall back to one full read
            log.warning("%s['%s'] is stored in Fortran order; loading it whole", self.path, self.key)
            yield from ArraySource(np.load(self.path)[self.key], self.description).iter_batches(batch_size)
            return
        item_shape = self.shape[1:]
        item_bytes = int(np.prod(item_shape))
        with self._open() as f:
            _read_npy_header(f)
            for start in range(0, self.shape[0], batch_size):
                n = min(batch_size, self.shape[0] - start)
                data = f.read(n * item_bytes)
                if len(data) != n * item_bytes:
                    raise ValueError(f"{self.path}['{self.key}'] is truncated: expected {self.shape[0]} images")
                block = np.frombuffer(data, dtype=np.uint8).reshape(n, *item_shape)
                yield [to_rgb_uint8(im) for im in block]


def _decode(path: Path) -> np.ndarray | None:
    """A file as uint8 RGB ``(H, W, 3)``, or None if it cannot be decoded."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        log.debug("cannot decode %s: %s", path, err)
        return None


class FolderSource(ImageSource):
    """Image files under a folder (recursive, sorted); undecodable files are skipped and counted."""

    def __init__(self, path: str | Path, num_workers: int = 4):
        self.path = Path(path)
        self.description = str(self.path)
        self.files: list[Path] = sorted(
            p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not self.files:
            raise ValueError(
                f"no images found in {self.path} (searched recursively for {', '.join(IMAGE_EXTENSIONS)})"
            )
        self.num_workers = max(1, num_workers)

    def __len__(self) -> int:
        return len(self.files)

    def iter_batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        self.skipped, bad = 0, []
        with ThreadPoolExecutor(self.num_workers) as pool:
            for start in range(0, len(self.files), batch_size):
                chunk = self.files[start: start + batch_size]
                batch = []
                for path, image in zip(chunk, pool.map(_decode, chunk)):
                    if image is None:
                        bad.append(path)
                    else:
                        batch.append(image)
                if batch:
                    yield batch
        self.skipped = len(bad)
        if bad:
            shown = ", ".join(str(p) for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
            log.warning("skipped %d unreadable image file(s) of %d in %s: %s", len(bad), len(self.files), self.path, shown)
        if len(bad) == len(self.files):
            raise ValueError(f"none of the {len(self.files)} image files in {self.path} could be decoded")


def open_source(source: str | Path | np.ndarray | torch.Tensor | ImageSource, num_workers: int = 4) -> ImageSource:
    """Turn a folder path, ``.npz``/``.npy`` path, ``"mnist:<split>"``, array or tensor into an :class:`ImageSource`.

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for an empty
    folder, an unsupported file type or an ``.npz`` without images.
    """
    if isinstance(source, ImageSource):
        return source
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return ArraySource(source)
    text = str(source)
    if text.startswith("mnist:"):
        from arforge.data.mnist import mnist_uint8

        split = text.split(":", 1)[1]
        images, _ = mnist_uint8(split, image_size=32, channels=3)
        return ArraySource(images, description=text)
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"image source not found: {path} (expected a folder, an .npz/.npy file or mnist:<split>)")
    if path.is_dir():
        return FolderSource(path, num_workers=num_workers)
    if path.suffix == ".npz":
        return NpzSource(path)
    if path.suffix == ".npy":
        return ArraySource(np.load(path, mmap_mode="r"), description=str(path))
    raise ValueError(f"unsupported image source {path}: pass a folder of images, an .npz/.npy file or mnist:<split>")
