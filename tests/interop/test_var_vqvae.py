"""VAR's multi-scale VQVAE golden fixture (made with VAR's own ``models/vqvae.py``) reproduced
through strict loading into :class:`MultiScaleVQTokenizer`: latents, code indices of every scale,
cumulative reconstructions, teacher-forcing inputs and decoded images."""

import pytest
import torch

from arforge.interop.var import convert_var_vqvae, load_var_vqvae, var_vqvae_config
from arforge.pretrained import CheckpointError

NAME = "var_vqvae.safetensors"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture(interop_fixture):
    return interop_fixture(NAME)


@pytest.fixture(scope="module")
def tokenizer(fixture, tmp_path_factory):
    meta, weights, _ = fixture
    path = tmp_path_factory.mktemp("var") / "vae.pth"
    torch.save(weights, path)  # VAR's released VQVAE is a raw state dict
    return load_var_vqvae(path, patch_nums=meta["VQVAE"]["v_patch_nums"])


def test_config_read_off_the_shapes(fixture):
    meta, weights, _ = fixture
    config = var_vqvae_config(weights, patch_nums=meta["VQVAE"]["v_patch_nums"])
    assert config.codebook_size == 64 and config.latent_channels == 8 and config.block_out_channels == [32, 32]
    assert config.phi_count == 4 and config.quant_conv_kernel == 3
    assert config.encoder_attn_levels == [1] and config.decoder_attn_levels == [1]


def test_phi_choice_matches_vars_tick_rule_including_its_float_tie(tokenizer):
    # MANIFEST: scale 3 of 7 is an exact tie that numpy's float64 argmin resolves to conv 2
    assert tokenizer.quantize.phi_index == [0, 0, 1, 2, 2, 3, 3]
    from arforge.tokenizers.multiscale_quantizer import phi_indices
    assert phi_indices(10, 4) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]  # released 256 px pyramid


def test_fixture_reproduced(fixture, tokenizer):
    _, _, io = fixture
    with torch.no_grad():
        f = tokenizer.encode_to_latent(io["img"])
        torch.testing.assert_close(f, io["f"], **TOL)
        indices, fhats = tokenizer.quantize.quantize(f, return_fhats=True)
        for si, idx in enumerate(indices):
            assert torch.equal(idx, io[f"idx_Bl_{si}"]), f"scale {si}"
            torch.testing.assert_close(fhats[si], io[f"fhat_{si}"], **TOL)
        assert torch.equal(tokenizer.encode(io["img"]), io["idx_BL"])
        torch.testing.assert_close(tokenizer.quantize.teacher_forcing_inputs(indices), io["x_BLCv_wo_first_l"], **TOL)
        recon = tokenizer.decode_latent(fhats[-1])
        torch.testing.assert_close(recon, io["rec_img_unclamped"], **TOL)
        torch.testing.assert_close(recon.clamp(-1, 1), io["rec_img"], **TOL)
        torch.testing.assert_close(tokenizer.decode(io["idx_BL"]).clamp(-1, 1), io["img_from_idx"], **TOL)


def test_round_trip_tokens_to_fhat_to_image_equals_decode(fixture, tokenizer):
    """indices -> f_hat -> image is exactly the tokenizer's decode, and the quantizer's one-scale
    sampling update rebuilds the same f_hat."""
    _, _, io = fixture
    q = tokenizer.quantize
    indices = q.split(io["idx_BL"])
    with torch.no_grad():
        f_hat = torch.zeros_like(io["f"])
        for si, (pn, idx) in enumerate(zip(q.patch_nums, indices)):
            f_hat, _ = q.next_input(si, f_hat, q.lookup(idx, pn))
        torch.testing.assert_close(f_hat, q.indices_to_fhat(indices), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(tokenizer.decode_latent(f_hat), tokenizer.decode(io["idx_BL"]), atol=1e-5, rtol=1e-5)


def test_unknown_and_missing_keys_are_named(fixture):
    _, weights, _ = fixture
    with pytest.raises(CheckpointError, match="quantize.mystery"):
        convert_var_vqvae({**weights, "quantize.mystery": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="quantize.embedding.weight"):
        var_vqvae_config({k: v for k, v in weights.items() if k != "quantize.embedding.weight"})
