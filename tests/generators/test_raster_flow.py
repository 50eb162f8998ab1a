"""Raster order with a flow-matching head over continuous tokens (a composition of the raster
generator and the shared FlowHead): KV-cached features equal teacher forcing, the loss reaches the
trunk, sampling takes one trunk pass per token with head-step annealing, save/load, config checks."""

import pytest
import torch

from arforge.config import ConfigError
from arforge.generators import BackboneConfig, RasterFlowConfig, RasterFlowGenerator
from arforge.generators.heads.flow import FlowHeadConfig
from arforge.auto import load_pretrained
from arforge.samplers import CFGSchedule, RasterFlowSampler


def tiny(seed: int = 0) -> RasterFlowGenerator:
    torch.manual_seed(seed)
    cfg = RasterFlowConfig(latent_channels=3, grid_size=(2, 3), num_classes=4,
                           backbone=BackboneConfig(dim=32, n_layer=2, n_head=2, multiple_of=16),
                           head=FlowHeadConfig(width=32, depth=1, sampling_steps=4))
    return RasterFlowGenerator(cfg).eval()


def test_kv_cached_features_equal_teacher_forcing(tmp_path):
    model = tiny()
    latents, labels = torch.randn(2, 3, 2, 3), torch.tensor([1, 3])
    tokens = model.tokens(latents)
    assert tokens.shape == (2, 6, 3) and torch.equal(tokens[:, 4], latents[:, :, 1, 1])
    with torch.no_grad():
        full = model(tokens, labels)
        cache = model.new_cache(2)
        steps = [model.prefill(labels, cache)]
        for i in range(5):
            steps.append(model.decode(tokens[:, i:i + 1], torch.full((2, 1), i), cache)[:, 0])
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path / "m")
    again = load_pretrained(tmp_path / "m").eval()
    assert isinstance(again, RasterFlowGenerator) and torch.equal(again(tokens, labels), full)


def test_loss_reaches_the_trunk():
    model = tiny().train()
    with torch.no_grad():  # the head's output layers start at zero (MAR init)
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.loss(torch.randn(4, 3, 2, 3), torch.tensor([0, 1, 2, 3])).backward()
    assert model.tok_embeddings.weight.grad.abs().sum() > 0 and model.layers[0].attention.wqkv.weight.grad.abs().sum() > 0


def test_sampling_one_pass_per_token_and_annealing():
    model = tiny()
    out = RasterFlowSampler(cfg=CFGSchedule(2.0, "linear")).sample(model, torch.tensor([0, 2]),
                                                                   generator_rng=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (2, 6, 3) and out.stats.forward_passes == 6 and out.stats.head_evaluations == 6 * 4
    annealed = RasterFlowSampler(head_steps=10, head_steps_end=2).sample(model, torch.tensor([0]))
    assert annealed.stats.head_evaluations < 6 * 10
    with pytest.raises(ValueError, match="raster_flow"):
        RasterFlowSampler().sample(torch.nn.Linear(1, 1), torch.tensor([0]))


def test_config_checks():
    with pytest.raises(ConfigError, match="latent_channels"):
        RasterFlowConfig(latent_channels=0)
    assert RasterFlowConfig(latent_channels=5).head.token_dim == 5
    shared = FlowHeadConfig()
    a, b = RasterFlowConfig(latent_channels=5, head=shared), RasterFlowConfig(latent_channels=7, head=shared)
    assert (a.head.token_dim, b.head.token_dim) == (5, 7)
    assert shared.token_dim == FlowHeadConfig().token_dim  # the caller's head config is not mutated
