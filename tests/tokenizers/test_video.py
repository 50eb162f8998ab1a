"""Causal video VQ tokenizer: shapes, image/video joint use, causality in time, and its training task."""

import pytest
import torch

from arforge.config import ConfigError
from arforge.auto import load_pretrained
from arforge.tokenizers.video import VideoVQConfig, VideoVQTokenizer
from arforge.train.tasks.video_vq import VideoVQTrainTask

TINY = dict(in_channels=1, ch=8, ch_mult=[1, 2, 2], temporal_down=[False, True], temporal_kernel=[1, 3, 3],
            norm_groups=4, z_channels=8, codebook_size=32, codebook_embed_dim=4)


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return VideoVQTokenizer(VideoVQConfig(**TINY)).eval()


def test_shapes_for_videos_and_images(tok):
    video = torch.rand(2, 5, 1, 16, 16) * 2 - 1
    codes = tok.encode(video)
    assert codes.shape == (2, 3, 4, 4) and codes.dtype == torch.long  # 1 + (5 - 1) / 2 latent frames
    assert tok.decode(codes).shape == video.shape
    image_codes = tok.encode(video[:, 0])
    assert image_codes.shape == (2, 4, 4)
    assert torch.equal(image_codes, codes[:, 0])  # the first frame is encoded alone: an image is a 1-frame video
    assert tok.decode(image_codes).shape == (2, 1, 16, 16)
    assert tok.grid_shape(16, 9) == (5, 4, 4) and tok.grid_shape(16) == (4, 4)


def test_codes_and_frames_are_causal_in_time(tok):
    video = torch.rand(1, 9, 1, 16, 16) * 2 - 1
    later = video.clone()
    later[:, 5:] = torch.rand_like(later[:, 5:])  # frames 5..8 feed latent frames 3 and 4 only
    a, b = tok.encode(video), tok.encode(later)
    assert torch.equal(a[:, :3], b[:, :3])
    with torch.no_grad():
        za, zb = tok.encode_to_latent(video), tok.encode_to_latent(later)
        mixed = torch.cat([za[:, :, :3], zb[:, :, 3:]], dim=2)
        ra, rm = tok.decode_latent(za), tok.decode_latent(mixed)
    torch.testing.assert_close(ra[:, :5], rm[:, :5])  # decoded frames 0..4 depend on latent frames 0..2 only


def test_bad_clip_lengths_and_sizes_are_explained(tok):
    with pytest.raises(ValueError, match="1 \\+ k\\*2 frames"):
        tok.encode(torch.zeros(1, 4, 1, 16, 16))
    with pytest.raises(ValueError, match="spatial factor"):
        tok.encode(torch.zeros(1, 5, 1, 18, 16))
    with pytest.raises(ConfigError, match="temporal_down"):
        VideoVQConfig(ch_mult=[1, 2], temporal_down=[True, True], temporal_kernel=[1, 3])


def test_save_and_load_roundtrip(tok, tmp_path):
    tok.save_pretrained(tmp_path / "video_tok")
    loaded = load_pretrained(tmp_path / "video_tok")
    video = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    assert isinstance(loaded, VideoVQTokenizer) and torch.equal(loaded.encode(video), tok.encode(video))


def test_training_task_learns_and_reports_per_frame_psnr():
    torch.manual_seed(0)
    task = VideoVQTrainTask.from_config({"tokenizer": {k: v for k, v in TINY.items() if k != "in_channels"},
                                          "dead_code_restart_every": 5},
                                         {"channels": 1, "image_size": 16, "num_frames": 5})
    video = torch.zeros(4, 5, 1, 16, 16) - 1
    for t in range(5):
        video[:, t, :, 4:10, 2 + 2 * t: 8 + 2 * t] = 1.0  # a moving square
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    first = None
    for step in range(40):
        loss, metrics = task.training_loss({"video": video}, step)
        first = first if first is not None else metrics["rec_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        task.on_step_end(step + 1)
    assert metrics["rec_loss"] < 0.5 * first
    result = task.evaluate([{"video": video}])
    assert result["val_psnr"] > 10 and 0 < result["val_codebook_usage"] <= 1
    with pytest.raises(ConfigError, match="num_frames"):
        VideoVQTrainTask.from_config({"tokenizer": {k: v for k, v in TINY.items() if k != "in_channels"}},
                                     {"channels": 1, "image_size": 16, "num_frames": 4})
