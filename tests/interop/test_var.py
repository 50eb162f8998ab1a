"""VAR transformer golden fixture (VAR's own ``models/var.py``) reproduced through strict loading
into :class:`VARGenerator`: training-forward logits, KV-cached scale-by-scale logits, greedy CFG
sampling (tokens, mixed logits, image) with the multi-scale tokenizer fixture."""

import pytest
import torch

from arforge.interop.var import convert_var_state_dict, load_var, load_var_vqvae, var_config
from arforge.pretrained import CheckpointError
from arforge.samplers import CFGSchedule, LogitsPipeline, VARSampler

TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture(interop_fixture):
    return interop_fixture("var_transformer.safetensors")


@pytest.fixture(scope="module")
def models(fixture, interop_fixture, tmp_path_factory):
    meta, weights, _ = fixture
    vae_meta, vae_weights, _ = interop_fixture("var_vqvae.safetensors")
    root = tmp_path_factory.mktemp("var")
    torch.save(weights, root / "var.pth")
    torch.save(vae_weights, root / "vae.pth")
    patch_nums = meta["VAR"]["patch_nums"]
    return load_var(root / "var.pth", patch_nums=patch_nums), load_var_vqvae(root / "vae.pth", patch_nums=patch_nums)


def test_config_read_off_the_shapes(fixture):
    meta, weights, _ = fixture
    config = var_config(weights, patch_nums=meta["VAR"]["patch_nums"])
    assert (config.backbone.n_layer, config.backbone.dim, config.backbone.n_head) == (2, 64, 2)
    assert config.vocab_size == 64 and config.latent_channels == 8 and config.num_classes == 10
    assert config.backbone.adaln == "block" and config.backbone.qk_l2_norm


def test_training_forward_and_kv_cached_logits(fixture, models):
    _, _, io = fixture
    var, _ = models
    with torch.no_grad():
        torch.testing.assert_close(var(io["x_BLCv_wo_first_l"], io["labels"]), io["logits_BLV"], **TOL)
        cache = var.new_cache(2)
        cond = var.condition(io["labels"])
        parts, first = [var.decode_scale(0, None, cond, cache)], var.order.scale_sizes[0]
        for si in range(1, var.order.num_scales):
            sl = var.order.scale_slice(si)
            parts.append(var.decode_scale(si, io["x_BLCv_wo_first_l"][:, sl.start - first:sl.stop - first], cond, cache))
        torch.testing.assert_close(torch.cat(parts, dim=1), io["kv_logits_BLV"], **TOL)


def test_greedy_cfg_sampling_reproduces_vars_autoregressive_infer_cfg(fixture, models):
    _, _, io = fixture
    var, vae = models
    # VAR's cfg=1.5 ramp == arforge's linear schedule to guidance 2.5; top_k=1 == greedy
    sampler = VARSampler(cfg=CFGSchedule(2.5, "linear"), logits=LogitsPipeline(greedy=True))
    out = sampler.sample(var, io["labels"], tokenizer=vae)
    assert torch.equal(out.tokens, io["greedy_cfg_idx_BL"])
    assert out.stats.forward_passes == var.order.num_scales == 7
    torch.testing.assert_close((out.images + 1) / 2, io["greedy_cfg_img"], **TOL)


def test_label_dropout_never_applies_in_eval(fixture, models):
    _, _, io = fixture
    var, _ = models
    var.config.class_dropout_prob = 0.99
    try:
        with torch.no_grad():
            torch.testing.assert_close(var(io["x_BLCv_wo_first_l"], io["labels"]), io["logits_BLV"], **TOL)
    finally:
        var.config.class_dropout_prob = 0.0


def test_wrong_patch_nums_and_unknown_keys_are_named(fixture, models):
    meta, weights, _ = fixture
    with pytest.raises(CheckpointError, match="patch_nums"):
        var_config(weights)  # the default 256 px pyramid has 680 positions, the fixture 155
    var, _ = models
    with pytest.raises(CheckpointError, match="blocks.0.attn.mystery"):
        convert_var_state_dict({**weights, "blocks.0.attn.mystery": torch.zeros(1)}, var)
    bad = dict(weights, lvl_1L=torch.zeros_like(weights["lvl_1L"]))
    with pytest.raises(CheckpointError, match="lvl_1L"):
        convert_var_state_dict(bad, var)
