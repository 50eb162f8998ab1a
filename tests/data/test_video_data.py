import numpy as np
import pytest
import torch

from arforge.data import DataConfig
from arforge.data.errors import DataError
from arforge.data.moving_mnist import MovingMNIST, bouncing_path
from arforge.data.registry import build_dataset, data_info
from arforge.data.video_folder import VideoFolder, save_frames


def test_moving_mnist_is_deterministic_bounded_and_labelled():
    a, b = MovingMNIST("val", num_frames=6, canvas=48), MovingMNIST("val", num_frames=6, canvas=48)
    assert len(a) == 500
    clip = a[7]
    assert clip["video"].shape == (6, 3, 48, 48) and clip["video"].min() >= -1 and clip["video"].max() <= 1
    assert torch.equal(clip["video"], b[7]["video"]) and int(clip["label"]) == int(a.labels[7])
    assert not torch.equal(a[7]["video"], MovingMNIST("val", num_frames=6, canvas=48, seed=1)[7]["video"])
    ink = a.clip_uint8(7).reshape(6, -1).sum(1)
    assert (ink == ink[0]).all()  # the whole digit stays inside the canvas in every frame


def test_bouncing_path_reflects_at_the_borders():
    rng = np.random.default_rng(0)
    path = bouncing_path(200, 36, rng, (3.0, 3.0))
    assert path.min() >= 0 and path.max() <= 36
    steps = np.abs(np.diff(path, axis=0)).max(1)
    assert steps.max() <= 4  # moves continuously (a reflection never jumps)


def test_moving_mnist_is_a_registered_dataset_with_video_info():
    cfg = DataConfig(name="moving_mnist", image_size=40, channels=1, num_frames=3)
    ds = build_dataset(cfg, "train")
    assert ds[0]["video"].shape == (3, 1, 40, 40)
    assert data_info(ds)["num_classes"] == 10
    with pytest.raises(DataError, match="splits"):
        build_dataset(cfg, "test")


def test_training_views_of_moving_mnist_are_more_trajectories_of_the_same_digits():
    one = MovingMNIST("val", num_frames=4, canvas=40, channels=1)
    three = MovingMNIST("val", num_frames=4, canvas=40, channels=1, clips_per_digit=3)
    n = len(one)
    assert len(three) == 3 * n
    assert np.array_equal(three.clip_uint8(5), one.clip_uint8(5))  # the first n clips are unchanged
    again = three.clip_uint8(n + 5)
    assert int(three[n + 5]["label"]) == int(one[5]["label"])
    assert not np.array_equal(again, one.clip_uint8(5))  # another trajectory ...
    assert sorted(again[0].flatten().tolist()) == sorted(one.clip_uint8(5)[0].flatten().tolist())  # ... of that digit
    cfg = DataConfig(name="moving_mnist", image_size=40, channels=1, num_frames=4, augment_views=2, val_split="val")
    assert len(build_dataset(cfg, "train")) == 2 * len(MovingMNIST("train", num_frames=4, canvas=40, channels=1))
    assert len(build_dataset(cfg, "val")) == n  # evaluation data is never augmented
    limited = build_dataset(DataConfig(name="moving_mnist", image_size=40, channels=1, num_frames=4, augment_views=2,
                                       limit=10), "train")
    assert len(limited) == 10 and limited[0]["video"].shape == (4, 1, 40, 40)  # no image shifts on top of the views
    with pytest.raises(ValueError, match="clips_per_digit"):
        MovingMNIST("val", clips_per_digit=0)


def test_video_folder_reads_frame_folders_and_skips_short_clips(tmp_path):
    clip = torch.rand(5, 3, 16, 16) * 2 - 1
    save_frames(clip, tmp_path / "cats" / "a")
    save_frames(clip[:2], tmp_path / "cats" / "short")
    save_frames(clip.flip(0), tmp_path / "dogs" / "b")
    ds = VideoFolder(tmp_path, num_frames=4, image_size=16)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 2
    item = ds[0]
    assert item["video"].shape == (4, 3, 16, 16) and int(item["label"]) == 0
    torch.testing.assert_close(item["video"], clip[:4], atol=1 / 127.5, rtol=0)
    with pytest.raises(DataError, match="no clips"):
        VideoFolder(tmp_path, num_frames=9)


def test_video_files_without_pyav_fail_with_the_fix(tmp_path, monkeypatch):
    import builtins
    import sys

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "clip.mp4").write_bytes(b"not a video")
    ds = VideoFolder(tmp_path, num_frames=2, image_size=8)
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("no av")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "av", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(DataError, match="pip install av"):
        ds[0]
