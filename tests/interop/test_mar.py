"""MAR golden fixture (made with MAR's own ``models/mar.py``) reproduced through strict loading of
its state dict into :class:`MARGenerator` (shared backbone in ViT mode + DiffusionHead)."""

import pytest
import torch
from safetensors.torch import save_file

from arforge.interop.mar import convert_mar_state_dict, load_mar, mar_config_from_state_dict
from arforge.pretrained import CheckpointError

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def fixture(interop_fixture):
    config, weights, io = interop_fixture("mar.safetensors")
    return config["MAR"], weights, io


@pytest.fixture(scope="module")
def released_format(fixture, tmp_path_factory):
    """MAR's ``checkpoint-last.pth`` layout: the EMA weights under ``model_ema`` next to other entries."""
    _, weights, _ = fixture
    path = tmp_path_factory.mktemp("mar") / "checkpoint-last.pth"
    scrambled = {k: torch.zeros_like(v) for k, v in weights.items()}
    torch.save({"model": scrambled, "model_ema": weights, "epoch": 800}, path)
    return path


def test_config_read_off_the_shapes(fixture):
    cfg, weights, _ = fixture
    config = mar_config_from_state_dict(weights, encoder_heads=cfg["encoder_num_heads"], decoder_heads=cfg["decoder_num_heads"])
    assert config.grid_size == (4, 4) and config.buffer_size == cfg["buffer_size"] and config.num_classes == cfg["class_num"]
    assert (config.encoder.dim, config.encoder.n_layer) == (cfg["encoder_embed_dim"], cfg["encoder_depth"])
    assert (config.head.width, config.head.depth) == (cfg["diffloss_w"], cfg["diffloss_d"]) and config.head.learn_sigma
    with pytest.raises(CheckpointError, match="encoder_heads"):
        mar_config_from_state_dict(weights)  # width 64 is no MAR preset: the head count must be given


def test_fixture_reproduced_from_the_released_layout(fixture, released_format):
    cfg, _, io = fixture
    model = load_mar(released_format, encoder_heads=cfg["encoder_num_heads"], decoder_heads=cfg["decoder_num_heads"])
    assert not model.training
    with torch.no_grad():
        tokens = model.patchify(io["latent"])
        torch.testing.assert_close(tokens, io["tokens"], atol=0, rtol=0)
        torch.testing.assert_close(model.unpatchify(tokens), io["latent"], atol=0, rtol=0)
        emb = model.class_embedding(io["labels"])
        enc = model.encode(tokens, io["mask"], emb)
        torch.testing.assert_close(enc, io["enc_out"], **TOL)
        z = model.decode(enc, io["mask"])
        torch.testing.assert_close(z, io["z"], **TOL)
        torch.testing.assert_close(z[io["mask"].bool()], io["z_masked"], **TOL)
        z_u = model.conditions(tokens, io["mask"], model.null_embedding(2))
        torch.testing.assert_close(z_u, io["z_uncond"], **TOL)
        out = model.diffloss.net(io["diff_x_t"], io["diff_t"], io["z_masked"])
        torch.testing.assert_close(out, io["diff_net_out"], **TOL)


def test_every_key_is_mapped_and_mismatches_are_listed(fixture, tmp_path):
    cfg, weights, _ = fixture
    assert len(convert_mar_state_dict(weights)) == len(weights)
    with pytest.raises(CheckpointError, match="encoder_blocks.0.attn.mystery"):
        convert_mar_state_dict(dict(weights, **{"encoder_blocks.0.attn.mystery.weight": torch.zeros(1)}))
    partial = {k: v for k, v in weights.items() if k != "decoder_blocks.1.mlp.fc2.bias"}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match="decoder.layers.1.feed_forward.w2.bias"):
        load_mar(tmp_path / "partial.safetensors", encoder_heads=4, decoder_heads=4)


def test_released_mar_b_layout_has_matching_names():
    """Every key pattern of MAR-B's 364-tensor state dict (../shared/reference/mar_state_dict.txt) maps onto
    the default MARConfig (MAR-B) and fills it exactly."""
    from arforge.generators.mar import MARConfig, MARGenerator

    with torch.device("meta"):
        model = MARGenerator(MARConfig())
    ours = set(model.state_dict())
    keys = ["fake_latent", "encoder_pos_embed_learned", "mask_token", "decoder_pos_embed_learned",
            "diffusion_pos_embed_learned", "class_emb.weight", "z_proj.weight", "z_proj.bias", "z_proj_ln.weight",
            "z_proj_ln.bias", "encoder_norm.weight", "encoder_norm.bias", "decoder_embed.weight", "decoder_embed.bias",
            "decoder_norm.weight", "decoder_norm.bias"]
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
             "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    keys += [f"{side}_blocks.{i}.{b}" for side in ("encoder", "decoder") for i in range(12) for b in block]
    net = ["time_embed.mlp.0.weight", "time_embed.mlp.0.bias", "time_embed.mlp.2.weight", "time_embed.mlp.2.bias",
           "cond_embed.weight", "cond_embed.bias", "input_proj.weight", "input_proj.bias",
           "final_layer.linear.weight", "final_layer.linear.bias", "final_layer.adaLN_modulation.1.weight",
           "final_layer.adaLN_modulation.1.bias"]
    net += [f"res_blocks.{i}.{b}" for i in range(6) for b in ("in_ln.weight", "in_ln.bias", "mlp.0.weight", "mlp.0.bias",
                                                               "mlp.2.weight", "mlp.2.bias", "adaLN_modulation.1.weight",
                                                               "adaLN_modulation.1.bias")]
    keys += [f"diffloss.net.{k}" for k in net]
    assert len(keys) == 364
    assert set(convert_mar_state_dict({k: torch.zeros(1) for k in keys})) == ours
