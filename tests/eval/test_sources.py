"""Image sources: folders (recursive, corrupt files), .npz streaming, arrays, conversions and errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from arforge.eval.sources import ArraySource, FolderSource, NpzSource, open_source


def _collect(source, batch_size=4) -> list[np.ndarray]:
    return [im for batch in source.iter_batches(batch_size) for im in batch]


@pytest.fixture()
def images_uint8() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 10, 12, 3), dtype=np.uint8)


def test_folder_is_recursive_sorted_and_converts_modes(tmp_path, images_uint8):
    (tmp_path / "sub").mkdir()
    for i, im in enumerate(images_uint8[:5]):
        Image.fromarray(im).save(tmp_path / f"{i:02d}.png")
    Image.fromarray(images_uint8[5][..., 0]).save(tmp_path / "sub" / "gray.png")  # mode L
    Image.fromarray(np.dstack([images_uint8[6], np.full((10, 12), 7, np.uint8)])).save(tmp_path / "sub" / "rgba.png")
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(tmp_path)
    assert isinstance(src, FolderSource) and len(src) == 7
    got = _collect(src, batch_size=3)
    assert all(im.shape == (10, 12, 3) and im.dtype == np.uint8 for im in got)
    for i in range(5):
        np.testing.assert_array_equal(got[i], images_uint8[i])
    np.testing.assert_array_equal(got[5], np.repeat(images_uint8[5][..., :1], 3, axis=-1))  # gray -> RGB
    np.testing.assert_array_equal(got[6], images_uint8[6])  # alpha dropped
    assert src.skipped == 0


def test_corrupt_files_are_skipped_counted_and_reported(tmp_path, images_uint8, caplog):
    for i, im in enumerate(images_uint8[:4]):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    good = (tmp_path / "0.png").read_bytes()
    (tmp_path / "1.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (tmp_path / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # header only
    src = open_source(tmp_path)
    with caplog.at_level("WARNING"):
        got = _collect(src)
    assert len(got) == 3 and src.skipped == 2
    assert "skipped 2 unreadable image file(s) of 5" in caplog.text and "1.png" in caplog.text


def test_folder_of_only_corrupt_files_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="none of the 1 image files"):
        _collect(open_source(tmp_path))


def test_missing_and_empty_and_unsupported_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="image source not found"):
        open_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="no images found"):
        open_source(tmp_path / "empty")
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unsupported image source"):
        open_source(tmp_path / "a.csv")


def test_npz_images_and_adm_arr0_are_streamed(tmp_path, images_uint8):
    np.savez(tmp_path / "samples.npz", images=images_uint8, labels=np.arange(7))
    np.savez_compressed(tmp_path / "adm.npz", arr_0=images_uint8[..., :1])  # grayscale, compressed
    src = open_source(tmp_path / "samples.npz")
    assert isinstance(src, NpzSource) and src.key == "images" and len(src) == 7
    np.testing.assert_array_equal(np.stack(_collect(src, 3)), images_uint8)
    adm = open_source(tmp_path / "adm.npz")
    assert adm.key == "arr_0"
    np.testing.assert_array_equal(np.stack(_collect(adm, 5)), np.repeat(images_uint8[..., :1], 3, axis=-1))


def test_npz_errors_name_the_problem(tmp_path, images_uint8):
    np.savez(tmp_path / "stats.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(ValueError, match="holds Inception statistics"):
        open_source(tmp_path / "stats.npz")
    np.savez(tmp_path / "float.npz", images=images_uint8.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        open_source(tmp_path / "float.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a valid .npz"):
        open_source(tmp_path / "bad.npz")


def test_npz_streaming_memory_is_bounded_by_the_batch(tmp_path):
    big = np.random.default_rng(1).integers(0, 256, (256, 64, 64, 3), dtype=np.uint8)  # 3 MiB
    np.savez(tmp_path / "big.npz", images=big)
    del big
    src = open_source(tmp_path / "big.npz")
    tracemalloc.start()
    try:
        n = sum(len(b) for b in src.iter_batches(8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 256
    assert peak < 1.5 * 1024 * 1024, f"peak {peak / 2**20:.2f} MiB: the file was not streamed"


def test_arrays_and_tensors_in_any_layout(images_uint8):
    nchw = torch.from_numpy(images_uint8).permute(0, 3, 1, 2)
    for obj in (images_uint8, torch.from_numpy(images_uint8), nchw, nchw.contiguous()):
        np.testing.assert_array_equal(np.stack(_collect(open_source(obj))), images_uint8)
    gray = images_uint8[..., 0]
    np.testing.assert_array_equal(np.stack(_collect(ArraySource(gray)))[..., 2], gray)
    with pytest.raises(ValueError, match="to_uint8"):
        open_source(images_uint8.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="channel axis"):
        open_source(np.zeros((2, 5, 6, 7), np.uint8))
    with pytest.raises(ValueError, match="no images"):
        open_source(np.zeros((0, 4, 4, 3), np.uint8))


def test_builtin_mnist_source():
    src = open_source("mnist:val")
    first = next(iter(src.iter_batches(4)))
    assert len(src) == 500 and first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
