"""VQTokenizer: public API shapes, config validation, save/load round trip and wrong-kind errors."""

import json

import pytest
import torch

from arforge.config import ConfigError, from_dict, to_dict
from arforge.auto import load_pretrained
from arforge.pretrained import CheckpointError
from arforge.tokenizers import VQConfig, VQOutput, VQTokenizer

TINY = dict(codebook_size=32, codebook_embed_dim=4, ch=16, norm_groups=8, encoder_ch_mult=[1, 2], decoder_ch_mult=[1, 2],
            z_channels=16, num_res_blocks=1)


@pytest.fixture
def tiny() -> VQTokenizer:
    torch.manual_seed(0)
    return VQTokenizer(VQConfig(**TINY)).eval()


def _images(b=2, c=3, size=16, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_public_api_shapes(tiny):
    images = _images()
    assert tiny.codebook_size == 32 and tiny.downsample_factor == 2
    assert tiny.grid_shape(16) == (8, 8) and tiny.grid_shape((16, 24)) == (8, 12)
    codes = tiny.encode(images)
    assert codes.shape == (2, 8, 8) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 32
    recon = tiny.decode(codes)
    assert recon.shape == images.shape and recon.dtype == torch.float32
    z = tiny.encode_to_latent(images)
    assert z.shape == (2, 4, 8, 8)
    z_q, q_codes, losses = tiny.quantize(z)
    assert torch.equal(q_codes, codes) and len(losses) == 3
    out = tiny(images)
    assert isinstance(out, VQOutput) and torch.equal(out.codes, codes)
    torch.testing.assert_close(out.recon, recon)
    torch.testing.assert_close(tiny.decode_latent(z_q), recon)
    for loss in (out.codebook_loss, out.commit_loss, out.entropy_loss):
        assert loss.ndim == 0
    codebook = tiny.codebook
    assert codebook.shape == (32, 4) and not codebook.requires_grad
    torch.testing.assert_close(codebook.norm(dim=-1), torch.ones(32))


def test_non_square_and_grayscale():
    model = VQTokenizer(VQConfig(**{**TINY, "in_channels": 1})).eval()
    images = _images(c=1, size=16)[..., :12]
    codes = model.encode(images)
    assert codes.shape == (2, 8, 6)
    assert model.decode(codes).shape == (2, 1, 16, 12)


def test_bad_inputs_fail_clearly(tiny):
    with pytest.raises(ValueError, match="not divisible by the tokenizer's downsample factor 2"):
        tiny.encode(_images(size=15))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny.encode(_images(c=1))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 32\)"):
        tiny.decode(torch.full((1, 4, 4), 40))
    with pytest.raises(ValueError, match="not divisible"):
        tiny.grid_shape(17)


def test_usage_tracking_in_training_mode(tiny):
    images = _images(b=4)
    tiny.train()
    tiny.reset_usage()
    out = tiny(images)
    fraction, perplexity = tiny.usage()
    assert fraction == pytest.approx(out.codes.unique().numel() / 32)
    assert 1.0 <= perplexity <= out.codes.unique().numel()
    tiny.reset_usage()
    tiny.eval()
    tiny(images)
    assert tiny.usage() == (0.0, 0.0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ch": 24, "norm_groups": 32}, r"GroupNorm\(32\) needs every width divisible by 32.*\[24, 48\]"),
        ({"decoder_ch_mult": [1, 2, 2]}, "same length"),
        ({"attn_levels": [2]}, r"attn_levels \[2\] must lie in \[0, 1\]"),
        ({"codebook_size": 0}, "codebook_size must be >= 1"),
        ({"dropout_p": 1.0}, "dropout_p"),
    ],
)
def test_config_validation(change, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(VQConfig, {**TINY, **change})


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown config key 'codebook_sz'"):
        from_dict(VQConfig, {"codebook_sz": 4})
    assert from_dict(VQConfig, to_dict(VQConfig(**TINY))) == VQConfig(**TINY)


def test_default_config_is_llamagen_vq16():
    config = VQConfig()
    assert (config.codebook_size, config.codebook_embed_dim, config.ch, config.z_channels) == (16384, 8, 128, 256)
    assert config.encoder_ch_mult == [1, 1, 2, 2, 4] and config.codebook_l2_norm and config.resolved_attn_levels == [4]


def test_attention_levels_are_configurable():
    model = VQTokenizer(VQConfig(**{**TINY, "attn_levels": []}))
    assert not any(".attn." in k for k in model.state_dict())
    model = VQTokenizer(VQConfig(**{**TINY, "attn_levels": [0, 1]}))
    keys = model.state_dict()
    assert "encoder.conv_blocks.0.attn.0.q.weight" in keys and "decoder.conv_blocks.1.attn.1.q.weight" in keys


def test_save_and_load_pretrained_round_trip(tmp_path, tiny):
    images = _images()
    tiny.train()
    tiny(images)  # writes the ring buffer, which must survive the round trip
    tiny.eval()
    directory = tiny.save_pretrained(tmp_path / "vq")
    meta = json.loads((directory / "config.json").read_text())
    assert meta["arforge"] == {"kind": "tokenizer", "type": "vq", "format": 1}
    loaded = VQTokenizer.from_pretrained(directory).eval()
    assert loaded.config == tiny.config
    assert torch.equal(loaded.quantize.codebook_used, tiny.quantize.codebook_used)
    with torch.no_grad():
        assert torch.equal(loaded.encode(images), tiny.encode(images))
        torch.testing.assert_close(loaded(images).recon, tiny(images).recon)
    generic = load_pretrained(directory, kind="tokenizer")
    assert isinstance(generic, VQTokenizer)


def test_loading_as_the_wrong_kind_fails(tmp_path, tiny):
    directory = tiny.save_pretrained(tmp_path / "vq")
    with pytest.raises(CheckpointError, match="holds a vq tokenizer, but a generator checkpoint is needed"):
        load_pretrained(directory, kind="generator")

    class OtherTokenizer(VQTokenizer):
        model_type = "other"

    with pytest.raises(CheckpointError, match="holds a vq tokenizer, not a other tokenizer"):
        OtherTokenizer.from_pretrained(directory)
    # tampered weights: strict load names the key
    weights = directory / "model.safetensors"
    from safetensors.torch import load_file, save_file

    sd = load_file(str(weights))
    del sd["post_quant_conv.bias"]
    save_file(sd, str(weights))
    with pytest.raises(CheckpointError, match="missing keys: post_quant_conv.bias"):
        VQTokenizer.from_pretrained(directory)
