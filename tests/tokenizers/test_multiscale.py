"""Multi-scale residual VQ tokenizer: token layout, reconstruction from indices, gradients of the
training pass, phi sharing layouts, save/load, validation, and the msvq -> var training pipeline."""

import pytest
import torch

from arforge.config import ConfigError
from arforge.auto import load_pretrained
from arforge.tokenizers import MultiScaleQuantizer, MultiScaleVQConfig, MultiScaleVQTokenizer
from arforge.tokenizers.multiscale_quantizer import phi_indices

TINY = dict(patch_nums=[1, 2, 4], codebook_size=16, latent_channels=4, block_out_channels=[8, 8], layers_per_block=1,
            encoder_attn_levels=[], decoder_attn_levels=[1], norm_num_groups=8)


@pytest.fixture
def tok():
    torch.manual_seed(0)
    return MultiScaleVQTokenizer(MultiScaleVQConfig(**TINY)).eval()


def test_tokens_layout_and_decode_from_indices(tok, tmp_path):
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    tokens = tok.encode(x)
    assert tokens.shape == (3, 1 + 4 + 16) and tok.grid_shape(8) == (1, 21) and tokens.max() < 16
    q = tok.quantize
    indices, fhats = q.quantize(tok.encode_to_latent(x), return_fhats=True)
    assert [i.shape[1] for i in indices] == [1, 4, 16] and torch.equal(torch.cat(indices, 1), tokens)
    with torch.no_grad():
        torch.testing.assert_close(q.indices_to_fhat(indices), fhats[-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(tok.decode(tokens), tok.decode_latent(fhats[-1]), atol=1e-5, rtol=1e-5)
        assert torch.equal(tok.decode(tokens[:, None]), tok.decode(tokens))  # the cached (B, 1, L) layout
        tf = q.teacher_forcing_inputs(indices)
        assert tf.shape == (3, 4 + 16, 4)
        # the first teacher-forcing scale is f_hat after scale 0 downsampled to 2x2
        f0 = q.phi(0)(torch.nn.functional.interpolate(q.lookup(indices[0], 1), size=(4, 4), mode="bicubic"))
        torch.testing.assert_close(tf[:, :4], torch.nn.functional.interpolate(f0, size=(2, 2), mode="area").flatten(2).transpose(1, 2))
    tok.save_pretrained(tmp_path / "msvq")
    again = load_pretrained(tmp_path / "msvq", kind="tokenizer")
    assert isinstance(again, MultiScaleVQTokenizer) and torch.equal(again.encode(x), tokens)


def test_finer_scales_reduce_the_residual(tok):
    """Each scale's code map is chosen to fit the residual: the reconstruction error of f shrinks."""
    f = tok.encode_to_latent(torch.rand(4, 3, 8, 8) * 2 - 1).detach()
    q = MultiScaleQuantizer(64, 4, [1, 2, 4], phi_count=1, phi_ratio=0.0)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.randn(64, 4) * f.std())
    _, fhats = q.quantize(f, return_fhats=True)
    errors = [float((f - fh).square().mean()) for fh in fhats]
    assert errors[-1] < errors[0]


def test_training_pass_sends_gradients_everywhere(tok):
    tok.train()
    recon, tokens, vq_loss = tok(torch.rand(2, 3, 8, 8) * 2 - 1)
    (recon.square().mean() + vq_loss).backward()
    for name in ("encoder.conv_in.weight", "decoder.conv_out.weight", "quantize.embedding.weight", "quantize.phis.0.weight",
                 "quant_conv.weight"):
        grad = dict(tok.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    used, _ = tok.usage()
    assert 0 < used <= 1 and tokens.shape == (2, 21)


def test_phi_sharing_layouts():
    assert phi_indices(6, 1) == [0] * 6
    assert phi_indices(6, 0) == list(range(6))
    assert phi_indices(7, 4) == [0, 0, 1, 2, 2, 3, 3]
    q = MultiScaleQuantizer(8, 4, [1, 2, 3], phi_count=0)
    assert len(q.phis) == 3 and q.phi(2) is q.phis[2]


@pytest.mark.parametrize("change, message", [({"patch_nums": [2, 1]}, "patch_nums"), ({"block_out_channels": [12]}, "divisible"),
                                             ({"decoder_attn_levels": [2]}, "decoder_attn_levels")])
def test_config_validation(change, message):
    with pytest.raises(ConfigError, match=message):
        MultiScaleVQConfig(**{**TINY, **change})


def test_wrong_image_size_is_named(tok):
    with pytest.raises(ValueError, match="patch_nums"):
        tok.encode(torch.zeros(1, 3, 16, 16))


def test_msvq_task_then_var_generator_then_var_sampler(tmp_path):
    """arforge train: a multi-scale tokenizer, then a VAR generator on its token cache; sampling
    takes one forward pass per scale."""
    from arforge.generators import VARGenerator
    from arforge.samplers import VARSampler
    from arforge.train.schema import run_config_from_dict
    from arforge.train.trainer import train

    data = {"name": "mnist", "image_size": 8, "channels": 1, "batch_size": 8, "limit": 24}
    train_cfg = {"steps": 2, "seed": 0, "log_every": 1, "eval_every": 2, "eval_batches": 1, "ckpt_every": 2}
    tok_run = train(run_config_from_dict({"task": {"name": "msvq_tokenizer", "tokenizer": TINY, "usage_every": 1},
                                          "data": data, "optim": {"lr": 1e-3}, "train": train_cfg}), tmp_path / "tok", device="cpu")
    assert "val_psnr" in tok_run.final_metrics and "usage" in tok_run.final_metrics
    model = {"depth": 1, "backbone": {"dim": 32, "n_head": 2}}
    gen_run = train(run_config_from_dict({
        "task": {"name": "var_generator", "model": model},
        "data": {"name": "tokens", "tokenizer": str(tok_run.exported_model_dir), "source": data, "batch_size": 8},
        "optim": {"lr": 1e-3}, "train": train_cfg}), tmp_path / "var", device="cpu")
    gen = load_pretrained(gen_run.exported_model_dir)
    tokenizer = load_pretrained(gen.pretrained_extra["tokenizer_dir"], kind="tokenizer")
    assert isinstance(gen, VARGenerator) and gen.order.patch_nums == (1, 2, 4) and gen.config.num_classes == 10
    out = VARSampler(cfg=2.0).sample(gen.eval(), torch.tensor([1, 7]), tokenizer=tokenizer,
                                     generator_rng=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (2, 21) and out.images.shape == (2, 1, 8, 8) and out.stats.forward_passes == 3
    with pytest.raises(ConfigError, match="multi-scale"):
        train(run_config_from_dict({"task": {"name": "var_generator", "model": model}, "data": {"name": "mnist"},
                                    "train": train_cfg}), tmp_path / "wrong", device="cpu")
