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


def _released_vqvae_keys() -> list[str]:
    """Parameter names of VAR's released ``vae_ch160v4096z32.pth`` (LDM encoder/decoder, ch 160,
    ch_mult 1,1,2,2,4, 2 res blocks, fused-qkv attention at the lowest resolution and in the mid
    blocks), written out from the module structure; the tiny fixture lacks e.g. ``nin_shortcut``."""
    widths, conv = [160, 160, 320, 320, 640], ("weight", "bias")

    def resnet(prefix, c_in, c_out):
        out = [f"{prefix}.{layer}.{p}" for layer in ("norm1", "conv1", "norm2", "conv2") for p in conv]
        return out + ([f"{prefix}.nin_shortcut.{p}" for p in conv] if c_in != c_out else [])

    def attn(prefix):
        return [f"{prefix}.{layer}.{p}" for layer in ("norm", "qkv", "proj_out") for p in conv]

    def mid(side):
        return resnet(f"{side}.mid.block_1", 640, 640) + attn(f"{side}.mid.attn_1") + resnet(f"{side}.mid.block_2", 640, 640)

    keys, c = [f"encoder.conv_in.{p}" for p in conv], 160
    for i, w in enumerate(widths):
        for j in range(2):
            keys += resnet(f"encoder.down.{i}.block.{j}", c, w) + (attn(f"encoder.down.{i}.attn.{j}") if i == 4 else [])
            c = w
        keys += [f"encoder.down.{i}.downsample.conv.{p}" for p in conv] if i < 4 else []
    keys += mid("encoder") + [f"encoder.{n}.{p}" for n in ("norm_out", "conv_out") for p in conv]
    keys += [f"decoder.conv_in.{p}" for p in conv] + mid("decoder")
    c = 640
    for i in reversed(range(5)):
        for j in range(3):
            keys += resnet(f"decoder.up.{i}.block.{j}", c, widths[i]) + (attn(f"decoder.up.{i}.attn.{j}") if i == 4 else [])
            c = widths[i]
        keys += [f"decoder.up.{i}.upsample.conv.{p}" for p in conv] if i > 0 else []
    keys += [f"decoder.{n}.{p}" for n in ("norm_out", "conv_out") for p in conv]
    keys += ["quantize.ema_vocab_hit_SV", "quantize.embedding.weight", "quant_conv.weight", "quant_conv.bias",
             "post_quant_conv.weight", "post_quant_conv.bias"]
    return keys + [f"quantize.quant_resi.qresi_ls.{i}.{p}" for i in range(4) for p in conv]


def test_released_vqvae_layout_maps_onto_the_default_tokenizer_exactly():
    """Every key of VAR's released VQVAE has exactly one counterpart in the default
    MultiScaleVQTokenizer (VAR's architecture), and vice versa; group sizes as in the released file."""
    from arforge.tokenizers import MultiScaleVQConfig, MultiScaleVQTokenizer

    keys = _released_vqvae_keys()
    groups = {g: sum(k.startswith(g + ".") for k in keys) for g in ("encoder.down", "encoder.mid", "decoder.up", "decoder.mid")}
    assert groups == {"encoder.down": 104, "encoder.mid": 22, "decoder.up": 150, "decoder.mid": 22}  # var_state_dict.txt
    fake = {k: torch.zeros(3 if ".qkv." in k else 1) for k in keys}  # a fused qkv splits in three
    fake["quantize.embedding.weight"] = torch.zeros(4096, 32)
    fake["quant_conv.weight"] = torch.zeros(32, 32, 3, 3)
    for i, w in enumerate([160, 160, 320, 320, 640]):
        fake[f"encoder.down.{i}.block.0.conv2.weight"] = torch.zeros(w, 1, 1, 1)
    fake["encoder.conv_in.weight"] = torch.zeros(160, 3, 3, 3)
    fake["post_quant_conv.weight"] = torch.zeros(32, 32, 3, 3)
    assert var_vqvae_config(fake) == MultiScaleVQConfig()
    with torch.device("meta"):
        model = MultiScaleVQTokenizer(MultiScaleVQConfig())
    converted = convert_var_vqvae(fake)
    assert set(converted) == set(model.state_dict())
    assert len(converted) == len(keys) - 1 + 7 * 4  # ema statistic dropped; 7 fused qkv (weight, bias) become 3 each


def test_released_var_d16_and_d36s_layouts_map_onto_the_generator_exactly():
    from arforge.generators import VARConfig, VARGenerator, var_backbone
    from arforge.interop.var import convert_var_state_dict

    for depth, shared in ((16, False), (2, True)):
        top = ["pos_start", "pos_1LC", "word_embed.weight", "word_embed.bias", "class_emb.weight", "lvl_embed.weight",
               "head_nm.ada_lin.1.weight", "head_nm.ada_lin.1.bias", "head.weight", "head.bias"]
        block = ["attn.scale_mul_1H11", "attn.q_bias", "attn.v_bias", "attn.zero_k_bias", "attn.mat_qkv.weight",
                 "attn.proj.weight", "attn.proj.bias", "ffn.fc1.weight", "ffn.fc1.bias", "ffn.fc2.weight", "ffn.fc2.bias"]
        block += ["ada_gss"] if shared else ["ada_lin.1.weight", "ada_lin.1.bias"]
        keys = top + [f"blocks.{i}.{b}" for i in range(depth) for b in block]
        keys += ["shared_ada_lin.1.weight", "shared_ada_lin.1.bias"] if shared else []
        if depth == 16:
            assert len(keys) + 2 == 220  # + lvl_1L and attn_bias_for_masking: var_state_dict.txt's count
        with torch.device("meta"):
            model = VARGenerator(VARConfig(backbone=var_backbone(depth, shared_adaln=shared)))
        converted = convert_var_state_dict({k: torch.zeros(1) for k in keys}, model)
        assert set(converted) == set(model.state_dict()), depth
    from arforge.interop.var import var_config
    d36 = {"word_embed.weight": torch.zeros(2304, 32), "class_emb.weight": torch.zeros(1001, 2304), "head.weight": torch.zeros(4096, 2304),
           "pos_1LC": torch.zeros(1, 2240, 1), "blocks.0.attn.scale_mul_1H11": torch.zeros(1, 36, 1, 1),
           "blocks.0.ffn.fc1.weight": torch.zeros(4 * 2304, 1), "shared_ada_lin.1.weight": torch.zeros(1)}
    config = var_config(d36)  # the 512 px pyramid is recognised by its length
    assert config.patch_nums[-1] == 32 and config.backbone.adaln == "shared" and config.backbone.n_head == 36
