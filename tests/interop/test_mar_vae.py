"""MAR's KL VAE golden fixture (made with MAR's own ``models/vae.py``) reproduced through the
LDM -> diffusers key conversion and strict loading into :class:`KLTokenizer`."""

import pytest
import torch
from safetensors.torch import save_file

from arforge.interop.mar_vae import kl_config_from_ldm_state_dict, ldm_vae_to_diffusers, load_kl
from arforge.pretrained import CheckpointError

NAME = "mar_vae.safetensors"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture(interop_fixture):
    return interop_fixture(NAME)


@pytest.fixture(scope="module")
def ckpt(fixture, tmp_path_factory):
    """The fixture weights in MAR's released file format: ``{"model": state_dict}`` in a ``.ckpt``."""
    path = tmp_path_factory.mktemp("mar") / "kl16.ckpt"
    torch.save({"model": fixture[1]}, path)
    return path


def test_config_read_off_the_shapes(fixture):
    meta, weights, _ = fixture
    config = kl_config_from_ldm_state_dict(weights)
    assert config.block_out_channels == [32 * m for m in meta["AutoencoderKL"]["ch_mult"]]
    assert config.latent_channels == meta["AutoencoderKL"]["embed_dim"] == 16
    assert config.layers_per_block == 2 and config.encoder_attn_levels == [1] and config.decoder_attn_levels == []
    assert config.mid_block_add_attention and config.scaling_factor == 0.2325


def test_fixture_reproduced_through_strict_loading(fixture, ckpt):
    _, _, io = fixture
    model = load_kl(ckpt)
    with torch.no_grad():
        dist = model.posterior(io["img"])
        torch.testing.assert_close(dist.mean, io["mean"], **TOL)
        torch.testing.assert_close(dist.logvar, io["logvar"], **TOL)
        torch.testing.assert_close(dist.std, io["std"], **TOL)
        torch.testing.assert_close(model.encode(io["img"]), io["mean"] * 0.2325, **TOL)
        torch.testing.assert_close(model.decode(io["mean"] * 0.2325), io["dec_of_mean"], **TOL)
        out = model(io["img"])  # eval mode decodes the posterior mean
        torch.testing.assert_close(out.recon, io["dec_of_mean"], **TOL)
    assert model.grid_shape(32) == (16, 16)


def test_sampling_the_posterior_uses_the_given_generator(fixture, ckpt):
    _, _, io = fixture
    model = load_kl(ckpt)
    with torch.no_grad():
        a = model.encode(io["img"], sample=True, generator=torch.Generator().manual_seed(5))
        b = model.encode(io["img"], sample=True, generator=torch.Generator().manual_seed(5))
        mean = model.encode(io["img"])
    assert torch.equal(a, b) and not torch.allclose(a, mean)


def test_every_key_is_mapped_and_errors_name_the_keys(fixture, tmp_path):
    _, weights, _ = fixture
    converted = ldm_vae_to_diffusers(weights)
    assert len(converted) == len(weights)
    assert any(".down_blocks.1.attentions.0.to_q.weight" in k for k in converted)  # diffusers' converter skips these
    extra = dict(weights, **{"encoder.down.0.mystery.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="mystery"):
        ldm_vae_to_diffusers(extra)
    missing = {k: v for k, v in weights.items() if k != "decoder.up.0.block.1.conv2.bias"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match="up_blocks.1.resnets.1.conv2.bias"):
        load_kl(tmp_path / "missing.safetensors")
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not an LDM autoencoder"):
        load_kl(tmp_path / "other.safetensors")


def _ldm_kl16_keys() -> list[str]:
    """Parameter names of MAR's released KL-16 (LDM AutoencoderKL, ch 128, ch_mult 1,1,2,2,4, 2 res blocks,
    encoder attention at the 16x16 level only), written out from the LDM module structure."""
    widths = [128, 128, 256, 256, 512]
    conv, norm = ("weight", "bias"), ("weight", "bias")
    keys = [f"encoder.conv_in.{p}" for p in conv]

    def resnet(prefix, c_in, c_out):
        out = [f"{prefix}.{layer}.{p}" for layer in ("norm1", "conv1", "norm2", "conv2") for p in conv]
        return out + ([f"{prefix}.nin_shortcut.{p}" for p in conv] if c_in != c_out else [])

    def attn(prefix):
        return [f"{prefix}.{layer}.{p}" for layer in ("norm", "q", "k", "v", "proj_out") for p in norm]

    c = 128
    for i, w in enumerate(widths):
        for j in range(2):
            keys += resnet(f"encoder.down.{i}.block.{j}", c, w)
            c = w
            if i == 4:
                keys += attn(f"encoder.down.{i}.attn.{j}")
        if i < 4:
            keys += [f"encoder.down.{i}.downsample.conv.{p}" for p in conv]
    for side in ("encoder", "decoder"):
        mid = resnet(f"{side}.mid.block_1", 512, 512) + attn(f"{side}.mid.attn_1") + resnet(f"{side}.mid.block_2", 512, 512)
        keys += mid if side == "encoder" else []
    keys += [f"encoder.{n}.{p}" for n in ("norm_out", "conv_out") for p in conv]
    keys += [f"decoder.conv_in.{p}" for p in conv]
    keys += resnet("decoder.mid.block_1", 512, 512) + attn("decoder.mid.attn_1") + resnet("decoder.mid.block_2", 512, 512)
    c = 512
    for i in reversed(range(5)):
        for j in range(3):
            keys += resnet(f"decoder.up.{i}.block.{j}", c, widths[i])
            c = widths[i]
        if i > 0:
            keys += [f"decoder.up.{i}.upsample.conv.{p}" for p in conv]
    keys += [f"decoder.{n}.{p}" for n in ("norm_out", "conv_out") for p in conv]
    keys += [f"{n}.{p}" for n in ("quant_conv", "post_quant_conv") for p in conv]
    return keys


def test_released_kl16_layout_maps_onto_the_diffusers_model_exactly():
    """Every key of the released layout (incl. nin_shortcut, which the tiny fixture lacks) has exactly one
    counterpart in KLTokenizer's default (KL-16) architecture, and vice versa."""
    from arforge.tokenizers import KLConfig, KLTokenizer

    ldm = _ldm_kl16_keys()
    groups = {g: sum(k.startswith(g + ".") for k in ldm) for g in ("encoder.down", "decoder.up", "encoder.mid", "decoder.mid")}
    assert groups == {"encoder.down": 112, "decoder.up": 132, "encoder.mid": 26, "decoder.mid": 26}  # counts of MAR's file
    converted = ldm_vae_to_diffusers({k: torch.zeros(1) for k in ldm})
    with torch.device("meta"):
        model = KLTokenizer(KLConfig())
    assert {f"vae.{k}" for k in converted} == set(model.state_dict())
    assert len(converted) == len(ldm)
