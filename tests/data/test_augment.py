"""Deterministic shifted views of the training images."""

import pytest
import torch

from arforge.data.augment import ShiftedViews, shift_image
from arforge.data.config import DataConfig
from arforge.data.registry import build_dataset, data_info


def test_shift_image_moves_content_and_replicates_edges():
    x = torch.arange(16.0).view(1, 4, 4)
    down_right = shift_image(x, 1, 2)
    assert torch.equal(down_right[0, 1:, 2:], x[0, :3, :2])
    assert torch.equal(down_right[0, 0, 2:], x[0, 0, :2])  # the vacated top row copies the edge
    assert torch.equal(shift_image(x, 0, 0), x)
    up_left = shift_image(x, -1, -1)
    assert torch.equal(up_left[0, :3, :3], x[0, 1:, 1:])


def test_views_keep_the_original_first_and_are_reproducible():
    base = [{"image": torch.randn(1, 8, 8), "label": torch.tensor(i % 3)} for i in range(5)]
    views = ShiftedViews(base, views=4, max_shift=2, seed=0)
    assert len(views) == 20
    for i in range(5):
        assert torch.equal(views[4 * i]["image"], base[i]["image"])
        assert all(int(views[4 * i + v]["label"]) == i % 3 for v in range(4))
    again = ShiftedViews(base, views=4, max_shift=2, seed=0)
    assert all(torch.equal(views[j]["image"], again[j]["image"]) for j in range(20))
    assert views.shifts_NV2[:, 1:].abs().max() <= 2 and views.shifts_NV2[:, 1:].abs().sum() > 0


def test_only_the_training_split_is_augmented():
    cfg = DataConfig(name="mnist", augment_views=3, limit=20)
    assert len(build_dataset(cfg, "train")) == 60
    assert len(build_dataset(cfg, "val")) == 20
    assert data_info(build_dataset(cfg, "train"))["num_classes"] == 10


@pytest.mark.parametrize("bad", [{"augment_views": 0}, {"augment_max_shift": -1}])
def test_bad_augmentation_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="augment"):
        DataConfig(name="mnist", **bad)


def test_augmenting_a_token_cache_directly_is_refused(tmp_path):
    from arforge.data.errors import DataError

    cfg = DataConfig(name="tokens", path=str(tmp_path / "x.safetensors"), augment_views=2)
    with pytest.raises(DataError, match="data.source"):
        build_dataset(cfg, "train")
