"""KL tokenizer: shapes, scaling, posterior sampling, save/load, training task end to end, latent caches."""

import pytest
import torch

from arforge.config import ConfigError
from arforge.auto import load_pretrained
from arforge.tokenizers import KLConfig, KLTokenizer

TINY = dict(latent_channels=2, block_out_channels=[32, 32], layers_per_block=1, encoder_attn_levels=[],
            norm_num_groups=8, scaling_factor=0.5)


def test_shapes_scaling_and_round_trip(tmp_path):
    torch.manual_seed(0)
    tok = KLTokenizer(KLConfig(**TINY)).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = tok.encode(x)
        assert z.shape == (2, 2, 8, 8) and tok.grid_shape(16) == (8, 8)
        torch.testing.assert_close(z, tok.posterior(x).mean * 0.5)
        assert tok.decode(z).shape == (2, 3, 16, 16)
        tok.save_pretrained(tmp_path / "kl")
        again = load_pretrained(tmp_path / "kl", kind="tokenizer")
        assert isinstance(again, KLTokenizer) and torch.equal(again.encode(x), z)
    with pytest.raises(ValueError, match="latents"):
        tok.decode(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible"):
        tok.grid_shape(15)


@pytest.mark.parametrize("change, message", [({"block_out_channels": [30]}, "GroupNorm"),
                                             ({"encoder_attn_levels": [3]}, "encoder_attn_levels"),
                                             ({"scaling_factor": 0.0}, "scaling_factor")])
def test_config_validation(change, message):
    with pytest.raises(ConfigError, match=message):
        KLConfig(**{**TINY, **change})


def test_kl_task_then_continuous_generators_on_cached_latents(tmp_path):
    """arforge train: a KL tokenizer, then MAR, FlowAR and raster+flow-head generators on its latent
    cache (tiny, a few steps)."""
    from arforge.data.latent_cache import LatentDataset
    from arforge.generators import FlowARGenerator, RasterFlowGenerator
    from arforge.generators.mar import MARGenerator
    from arforge.samplers import FlowARSampler, RasterFlowSampler
    from arforge.train.schema import run_config_from_dict
    from arforge.train.trainer import train

    data = {"name": "mnist", "image_size": 16, "channels": 1, "batch_size": 8, "limit": 40}
    train_cfg = {"steps": 3, "seed": 0, "log_every": 1, "eval_every": 3, "eval_batches": 1, "ckpt_every": 3}
    kl = train(run_config_from_dict({"task": {"name": "kl_tokenizer", "tokenizer": TINY}, "data": data,
                                     "optim": {"lr": 1e-3}, "train": train_cfg}), tmp_path / "kl", device="cpu")
    assert "val_psnr" in kl.final_metrics and isinstance(load_pretrained(kl.exported_model_dir), KLTokenizer)
    mar_model = {"buffer_size": 2, "encoder_embed_dim": 32, "encoder_depth": 1, "encoder_num_heads": 2,
                 "decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 2, "diffloss_w": 32, "diffloss_d": 1,
                 "num_sampling_steps": 5}
    gen = train(run_config_from_dict({
        "task": {"name": "latent_generator", "family": "mar", "model": mar_model},
        "data": {"name": "latents", "tokenizer": str(kl.exported_model_dir), "source": data, "batch_size": 8},
        "optim": {"lr": 1e-3}, "train": train_cfg}), tmp_path / "mar", device="cpu")
    model = load_pretrained(gen.exported_model_dir)
    assert isinstance(model, MARGenerator) and model.config.grid_size == (8, 8) and model.config.latent_channels == 2
    assert model.pretrained_extra["tokenizer_dir"] == str(kl.exported_model_dir.resolve())
    flow_model = {"patch_nums": [1, 2, 4, 8], "depth": 1, "backbone": {"dim": 32, "n_head": 2},
                  "head": {"width": 32, "depth": 1, "sampling_steps": 3}}
    flow = train(run_config_from_dict({
        "task": {"name": "latent_generator", "family": "flowar", "model": flow_model},
        "data": {"name": "latents", "tokenizer": str(kl.exported_model_dir), "source": data, "batch_size": 8},
        "optim": {"lr": 1e-3}, "train": train_cfg}), tmp_path / "flowar", device="cpu")
    flowar = load_pretrained(flow.exported_model_dir).eval()
    assert isinstance(flowar, FlowARGenerator) and flowar.config.grid_size == (8, 8) and flowar.config.head.token_dim == 2
    sample = FlowARSampler(cfg=2.0).sample(flowar, torch.tensor([3, 4]), tokenizer=load_pretrained(kl.exported_model_dir))
    assert sample.images.shape == (2, 1, 16, 16) and sample.stats.forward_passes == 4
    raster = train(run_config_from_dict({
        "task": {"name": "latent_generator", "family": "raster_flow",
                 "model": {"backbone": {"dim": 32, "n_layer": 1, "n_head": 2, "multiple_of": 16},
                           "head": {"width": 32, "depth": 1, "sampling_steps": 2}}},
        "data": {"name": "latents", "tokenizer": str(kl.exported_model_dir), "source": data, "batch_size": 8},
        "optim": {"lr": 1e-3}, "train": train_cfg}), tmp_path / "raster_flow", device="cpu")
    raster_flow = load_pretrained(raster.exported_model_dir).eval()
    assert isinstance(raster_flow, RasterFlowGenerator) and raster_flow.config.grid_size == (8, 8)
    assert RasterFlowSampler().sample(raster_flow, torch.tensor([1])).stats.forward_passes == 64
    cache = LatentDataset(tmp_path / "mar" / "latents_mnist_train.safetensors")
    assert cache[0]["latents"].shape == (2, 8, 8) and len(cache) == 40
    with pytest.raises(Exception, match="data.name: tokens|continuous"):
        train(run_config_from_dict({"task": {"name": "generator"}, "data": {
            "name": "tokens", "tokenizer": str(kl.exported_model_dir), "source": data}, "train": train_cfg}),
            tmp_path / "wrong", device="cpu")


def test_kl_task_patchgan_terms_start_at_disc_start_step_and_train_both_players():
    from arforge.train.tasks.kl import KLTrainTask

    task = KLTrainTask.from_config({"tokenizer": TINY, "disc_weight": 0.5, "disc_start_step": 2,
                                    "discriminator": {"ndf": 8, "n_layers": 1}}, {"channels": 1, "image_size": 16})
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    loss, metrics = task.training_loss({"image": images}, 0)
    assert "disc_loss" not in metrics
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in task.discriminator.parameters())
    task.zero_grad()
    loss, metrics = task.training_loss({"image": images}, 2)
    assert {"gen_adv_loss", "disc_loss", "logits_real", "logits_fake"} <= metrics.keys()
    loss.backward()
    assert any(p.grad.abs().sum() > 0 for p in task.discriminator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.tokenizer.parameters())
    with pytest.raises(ConfigError, match="n_layers"):
        KLTrainTask.from_config({"tokenizer": TINY, "disc_weight": 0.5, "discriminator": {"n_layers": 5}},
                                {"channels": 1, "image_size": 16})
