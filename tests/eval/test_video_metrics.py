import numpy as np
import torch

from arforge.eval.video import frame_class_accuracy, ink_crops, real_videos, shuffle_frames, temporal_consistency
from arforge.utils.images import make_video_grid, save_gif, to_uint8


def test_temporal_consistency_ranks_real_above_shuffled_above_noise():
    real, labels = real_videos("moving_mnist:val", num_frames=5, image_size=64, limit=40)
    assert real.shape == (40, 5, 64, 64, 3) and len(labels) == 40
    rigid = temporal_consistency(real)
    shuffled = temporal_consistency(shuffle_frames(real))
    noise = temporal_consistency((np.random.default_rng(0).random(real.shape) * 255).astype(np.uint8))
    assert rigid > 0.99 and rigid > shuffled + 0.05 and shuffled > noise + 0.3


def test_shuffle_moves_every_frame():
    videos = np.arange(4 * 5).reshape(4, 5, 1, 1, 1).astype(np.uint8)
    shuffled = shuffle_frames(videos, seed=3)
    assert (shuffled[..., 0, 0, 0] != videos[..., 0, 0, 0]).all()
    assert (np.sort(shuffled[..., 0, 0, 0], axis=1) == videos[..., 0, 0, 0]).all()


def test_ink_crops_centre_the_digit():
    frames = torch.zeros(2, 64, 64)
    frames[0, 40:50, 5:15] = 1.0
    frames[1, 0:4, 60:64] = 1.0
    crops = ink_crops(frames)
    assert crops.shape == (2, 32, 32)
    assert crops[0].sum() == 100 and crops[0, 10:23, 10:23].sum() == 100  # centred to within a pixel
    assert crops[1].sum() == 16  # near a corner: padded, nothing lost


def test_frame_class_accuracy_scores_every_frame():
    class HalfRight:
        def predict(self, crops):
            return np.array([0, 1] * (len(crops) // 2))

    videos = np.zeros((2, 2, 64, 64, 3), dtype=np.uint8)
    assert frame_class_accuracy(HalfRight(), videos, np.array([0, 1])) == 0.5


def test_video_uint8_conversion_and_gif(tmp_path):
    videos = torch.rand(3, 4, 1, 8, 8) * 2 - 1
    arr = to_uint8(videos)
    assert arr.shape == (3, 4, 8, 8, 3) and arr.dtype == np.uint8
    grid = make_video_grid(arr, nrow=3)
    assert grid.shape[0] == 4
    save_gif(grid, tmp_path / "grid.gif")
    from PIL import Image

    with Image.open(tmp_path / "grid.gif") as gif:
        assert gif.n_frames == 4
