"""Users' videos: ``root/<class>/<clip>/`` folders of frame images, or ``root/<class>/*.mp4|...`` files.

Classes are the sorted sub-directories of ``root`` (a root without class folders is one class).
A clip folder's frames are its image files in name order; video files are decoded with PyAV
(``pip install av``), which is only needed when such files are present. Each item is the first
``num_frames`` frames of a clip (frame folders with fewer are skipped at indexing time and counted in
one warning; a decoded file that is too short raises :class:`DataError` naming it), every frame
resized and centre-cropped to ``image_size`` like :class:`~arforge.data.folder.ImageFolder`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from arforge.data.errors import DataError
from arforge.data.folder import IMAGE_EXTENSIONS
from arforge.data.transforms import center_crop_arr, convert_channels, load_image, to_tensor

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


def _frames_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _decode_video(path: Path, num_frames: int) -> list[Image.Image]:
    try:
        import av
    except ImportError as err:
        raise DataError(f"{path} is a video file: decoding it needs PyAV (pip install av), or extract its frames "
                        "into a folder of images") from err
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_image())
            if len(frames) == num_frames:
                break
    if len(frames) < num_frames:
        raise DataError(f"{path} has {len(frames)} frames, fewer than data.num_frames={num_frames}")
    return frames


class VideoFolder(Dataset):
    """Clips under ``root``. Items: ``{"video": float32 (T, C, H, W) in [-1, 1], "label": int64}``."""

    def __init__(self, root: str | Path, num_frames: int = 8, image_size: int = 64, channels: int = 3):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"video folder {root} does not exist")
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        is_clip = bool(class_dirs) and all(_frames_of(d) for d in class_dirs)
        groups = [(root.name, [root])] if not class_dirs or is_clip else [(d.name, [d]) for d in class_dirs]
        self.classes = [name for name, _ in groups]
        self.items: list[tuple[Path, int]] = []
        short = 0
        for label, (_, (folder,)) in enumerate(groups):
            for entry in sorted(folder.iterdir()):
                if entry.is_dir() and not entry.name.startswith("."):
                    if len(_frames_of(entry)) >= num_frames:
                        self.items.append((entry, label))
                    else:
                        short += 1
                elif entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS:
                    self.items.append((entry, label))
        if short:
            log.warning("video folder %s: skipped %d clip folder(s) with fewer than %d frames", root, short, num_frames)
        if not self.items:
            raise DataError(f"no clips under {root}: expected <class>/<clip>/ frame folders or <class>/*.mp4 files "
                            f"with at least {num_frames} frames")
        self.num_frames, self.image_size, self.channels = num_frames, image_size, channels
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        path, label = self.items[i]
        if path.is_dir():
            frames = [load_image(p, self.image_size, self.channels) for p in _frames_of(path)[: self.num_frames]]
        else:
            frames = [to_tensor(center_crop_arr(convert_channels(im, self.channels), self.image_size))
                      for im in _decode_video(path, self.num_frames)]
        return {"video": torch.stack(frames), "label": torch.tensor(label, dtype=torch.long)}


def save_frames(video_TCHW: torch.Tensor, folder: str | Path) -> None:
    """Write a clip in ``[-1, 1]`` as ``folder/000.png, 001.png, ...`` (the layout :class:`VideoFolder` reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = ((video_TCHW.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for t, frame in enumerate(arr):
        Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(folder / f"{t:03d}.png")
