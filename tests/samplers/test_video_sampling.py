"""Sampling a video generator end to end: tokens -> clips -> samples.npz, GIF grid and per-sample GIFs."""

import numpy as np
import torch

from arforge.generators import BackboneConfig, NBPConfig, NBPGenerator
from arforge.samplers import build_sampler
from arforge.samplers.folder import sample_to_folder
from arforge.tokenizers.video import VideoVQConfig, VideoVQTokenizer


def test_video_samples_are_written_as_gifs(tmp_path):
    torch.manual_seed(0)
    tok = VideoVQTokenizer(VideoVQConfig(in_channels=1, ch=8, ch_mult=[1, 2], temporal_down=[True], temporal_kernel=[1, 3],
                                         norm_groups=4, z_channels=8, codebook_size=16, codebook_embed_dim=4)).eval()
    t, h, w = tok.grid_shape(8, 5)
    gen = NBPGenerator(NBPConfig(vocab_size=16, grid_size=(t, h, w), num_classes=2, block_size=(1, h, w),
                                 backbone=BackboneConfig(dim=48, n_layer=1, n_head=2, multiple_of=16))).eval()
    summary = sample_to_folder(gen, tok, torch.tensor([0, 0, 1, 1]), build_sampler("ar", cfg=2.0), tmp_path / "out",
                               batch_size=2, seed=0)
    assert summary["num_images"] == 4 and summary["forward_passes_per_batch"] == t
    data = np.load(tmp_path / "out" / "samples.npz")
    assert data["images"].shape == (4, 5, 8, 8, 3)
    from PIL import Image

    with Image.open(tmp_path / "out" / "grid.gif") as gif:
        assert gif.n_frames == 5
    assert len(list((tmp_path / "out" / "samples").glob("*.gif"))) == 4
