"""Image folders: class indexing, flat folders, corrupt files, errors, channel conversion, resize + crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arforge.data import DataConfig, DataError, ImageFolder, build_dataset, center_crop_arr, convert_channels, data_info


def _save(path: Path, color, size=(20, 12), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def class_folder(tmp_path) -> Path:
    root = tmp_path / "train"
    _save(root / "cat" / "a.png", (255, 0, 0))
    _save(root / "cat" / "b.JPG", (250, 0, 0))
    _save(root / "dog" / "nested" / "c.png", (0, 0, 255))
    _save(root / "ant" / "d.bmp", (0, 255, 0))
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_classes_from_sorted_folders(class_folder):
    ds = ImageFolder(class_folder, image_size=8, channels=3)
    assert ds.classes == ["ant", "cat", "dog"] and ds.num_classes == 3 and len(ds) == 4
    labels = {p.name: int(label) for p, label in zip(ds.files, ds.labels)}
    assert labels == {"d.bmp": 0, "a.png": 1, "b.JPG": 1, "c.png": 2}
    item = ds[0]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64
    # ant is pure green: (0, 255, 0) -> (-1, 1, -1)
    torch.testing.assert_close(item["image"][:, 4, 4], torch.tensor([-1.0, 1.0, -1.0]))


def test_flat_folder_is_one_class(tmp_path):
    for i in range(3):
        _save(tmp_path / "flat" / f"{i}.png", (i * 40, 0, 0))
    ds = ImageFolder(tmp_path / "flat", image_size=4)
    assert ds.classes == ["flat"] and len(ds) == 3 and set(ds.labels.tolist()) == {0}


def test_corrupt_files_are_skipped_with_one_counted_warning(class_folder, arforge_log):
    (class_folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    good = _save(class_folder / "dog" / "trunc.png", (1, 2, 3), size=(64, 64))
    good.write_bytes(good.read_bytes()[:-20])  # truncated: the IEND chunk and CRC are gone
    (class_folder / "ant" / "empty.jpg").write_bytes(b"")
    ds = ImageFolder(class_folder, image_size=8)
    assert ds.num_skipped == 3 and len(ds) == 4
    warnings = [w for w in arforge_log.warnings() if "unreadable" in w]
    assert len(warnings) == 1 and "skipped 3 unreadable" in warnings[0] and str(class_folder) in warnings[0]
    for i in range(len(ds)):  # every kept file loads
        assert ds[i]["image"].shape == (3, 8, 8)


def test_missing_and_empty_folders_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match=f"no images found in {tmp_path / 'empty'}"):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="could be read"):
        ImageFolder(tmp_path / "bad")


def test_grayscale_and_rgb_conversion(tmp_path):
    rgb = _save(tmp_path / "rgb" / "x.png", (200, 100, 50), size=(6, 6))
    gray = _save(tmp_path / "gray" / "y.png", 64, size=(6, 6), mode="L")
    as_gray = ImageFolder(rgb.parent, image_size=6, channels=1)[0]["image"]
    assert as_gray.shape == (1, 6, 6)
    luma = (200 * 299 + 100 * 587 + 50 * 114) / 1000  # ITU-R 601-2, what PIL's "L" uses
    assert as_gray.mean().item() == pytest.approx(luma / 127.5 - 1, abs=1 / 127.5)
    as_rgb = ImageFolder(gray.parent, image_size=6, channels=3)[0]["image"]
    assert as_rgb.shape == (3, 6, 6)
    assert torch.equal(as_rgb[0], as_rgb[1]) and torch.equal(as_rgb[1], as_rgb[2])
    assert as_rgb[0, 0, 0].item() == pytest.approx(64 / 127.5 - 1)


def test_transparency_composited_on_white():
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert np.asarray(convert_channels(rgba, 3)).tolist() == [[[255, 255, 255]] * 2] * 2
    assert np.asarray(convert_channels(rgba, 1)).tolist() == [[255, 255]] * 2


def test_center_crop_arr_resizes_shorter_side_and_crops_middle():
    arr = np.zeros((40, 120, 3), dtype=np.uint8)
    arr[:, 40:80] = 255  # white middle third
    out = center_crop_arr(Image.fromarray(arr), 10)
    assert out.shape == (10, 10, 3) and out.min() > 240  # only the white middle survives the crop
    big = center_crop_arr(Image.new("L", (300, 100), 7), 16)  # BOX halving, then bicubic
    assert big.shape == (16, 16) and (big == 7).all()
    up = center_crop_arr(Image.new("RGB", (5, 7), (1, 2, 3)), 9)  # upsampling works too
    assert up.shape == (9, 9, 3)


def test_build_dataset_folder_splits_and_info(class_folder, tmp_path):
    _save(tmp_path / "val" / "cat" / "v.png", (255, 0, 0))
    cfg = DataConfig(name="folder", path=str(class_folder), val_path=str(tmp_path / "val"), image_size=8, channels=1)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert len(train) == 4 and len(val) == 1
    assert data_info(train) == {"image_size": 8, "channels": 1, "num_classes": 3}
    assert build_dataset(DataConfig(name="folder", path=str(class_folder), image_size=8, limit=2), "train").indices == [0, 2]
    with pytest.raises(DataError, match="data.val_path"):
        build_dataset(DataConfig(name="folder", path=str(class_folder)), "val")
    with pytest.raises(DataError, match="data.path"):
        build_dataset(DataConfig(name="folder"), "train")
