"""FlowAR (continuous next-scale + flow head): pyramid construction, KV-cached scale features equal
teacher forcing, sampling takes one trunk pass per scale with batched head integration, DiSA-style
step annealing lowers head evaluations, CFG ramp and config validation."""

import pytest
import torch

from arforge.config import ConfigError
from arforge.generators import FlowARConfig, FlowARGenerator, var_backbone
from arforge.generators.heads.flow import FlowHeadConfig
from arforge.samplers import CFGSchedule, FlowARSampler


def tiny_flowar(seed: int = 0) -> FlowARGenerator:
    torch.manual_seed(seed)
    backbone = var_backbone(2)
    backbone.dim, backbone.n_head = 32, 2
    head = FlowHeadConfig(width=32, depth=1, sampling_steps=4)
    return FlowARGenerator(FlowARConfig(latent_channels=3, patch_nums=[1, 2, 4], grid_size=(4, 4), num_classes=3,
                                        init_adaln_gamma=0.5, backbone=backbone, head=head)).eval()


def test_pyramid_and_teacher_forcing_inputs():
    model = tiny_flowar()
    z = torch.randn(2, 3, 4, 4)
    scales = model.scales(z)
    assert [tuple(s.shape[-2:]) for s in scales] == [(1, 1), (2, 2), (4, 4)] and scales[-1] is z
    torch.testing.assert_close(scales[0][..., 0, 0], z.mean((-2, -1)))
    assert model.teacher_forcing_inputs(scales).shape == (2, 4 + 16, 3)
    with pytest.raises(ValueError, match="latents"):
        model.scales(torch.randn(2, 3, 8, 8))


def test_kv_cached_features_equal_teacher_forcing_and_loss_trains():
    model = tiny_flowar()
    z, labels = torch.randn(2, 3, 4, 4), torch.tensor([0, 2])
    x = model.teacher_forcing_inputs(model.scales(z))
    with torch.no_grad():
        cond = model.condition(labels)
        full = model.hidden(x, cond)
        cache = model.new_cache(2)
        parts = [model.decode_scale_hidden(0, None, cond, cache)]
        for si in (1, 2):
            sl = model.order.scale_slice(si)
            parts.append(model.decode_scale_hidden(si, x[:, sl.start - 1:sl.stop - 1], cond, cache))
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    model.train()
    with torch.no_grad():  # the head's output layers start at zero (MAR init); open the gradient path to the trunk
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    loss = model.loss(z, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.word_embed.weight.grad.abs().sum() > 0 and model.class_emb.weight.grad.abs().sum() > 0


def test_sampling_passes_head_evaluations_and_annealing(monkeypatch):
    model = tiny_flowar()
    labels = torch.tensor([0, 1])
    full = FlowARSampler(cfg=CFGSchedule(3.0, "linear")).sample(model, labels, generator_rng=torch.Generator().manual_seed(0))
    assert full.tokens.shape == (2, 21, 3) and full.stats.forward_passes == 3 and full.images is None
    assert full.stats.head_evaluations == 3 * 4
    annealed = FlowARSampler(cfg=2.0, head_steps=8, head_steps_end=2).sample(model, labels, generator_rng=torch.Generator().manual_seed(0))
    assert annealed.stats.head_evaluations == 8 + 5 + 2
    # CFG ramp: guidance 1 at the first scale, the full scale at the last
    seen = []
    original = model.head.sample
    monkeypatch.setattr(model.head, "sample", lambda *a, **k: seen.append(k["cfg"]) or original(*a, **k))
    FlowARSampler(cfg=CFGSchedule(3.0, "linear")).sample(model, labels)
    assert seen == [1.0, 2.0, 3.0]


def test_config_validation():
    with pytest.raises(ConfigError, match="latent grid"):
        FlowARConfig(latent_channels=3, patch_nums=[1, 2, 4], grid_size=(8, 8), backbone=var_backbone(1))
    cfg = FlowARConfig(latent_channels=3, patch_nums=[1, 2], grid_size=(2, 2), backbone=var_backbone(1))
    assert cfg.head.token_dim == 3 and cfg.head.cond_dim == 64
