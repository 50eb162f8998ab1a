"""DiffusionHead against MAR's DiffLoss golden fixture (network, CFG, schedule, posterior, a full
temperature-0 chain) and its training/sampling contracts."""

import pytest
import torch

from arforge.generators.heads import DiffusionHead, DiffusionHeadConfig
from arforge.generators.heads.diffusion import respaced_timesteps
from arforge.pretrained import load_state_dict_strict

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def mar(interop_fixture):
    config, weights, io = interop_fixture("mar.safetensors")
    cfg = config["MAR"]
    head = DiffusionHead(DiffusionHeadConfig(token_dim=cfg["vae_embed_dim"], cond_dim=cfg["decoder_embed_dim"],
                                             width=cfg["diffloss_w"], depth=cfg["diffloss_d"],
                                             sampling_steps=int(cfg["num_sampling_steps"]), batch_mul=cfg["diffusion_batch_mul"]))
    head_weights = {k[len("diffloss."):]: v for k, v in weights.items() if k.startswith("diffloss.")}
    load_state_dict_strict(head, head_weights, "mar.safetensors")
    return head.eval(), io


def test_schedule_matches_mar(mar):
    head, io = mar
    torch.testing.assert_close(head.train_diffusion.betas, io["train_betas"], atol=1e-7, rtol=0)
    assert torch.equal(head.sample_diffusion.timestep_map, io["gen_timestep_map"])
    torch.testing.assert_close(head.sample_diffusion.betas, io["gen_betas"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(head.sample_diffusion.alphas_cumprod, io["gen_alphas_cumprod"], atol=1e-7, rtol=1e-5)


def test_network_and_cfg_outputs(mar):
    head, io = mar
    with torch.no_grad():
        torch.testing.assert_close(head.net(io["diff_x_t"], io["diff_t"], io["z_masked"]), io["diff_net_out"], **TOL)
        guided = head.net.forward_with_cfg(io["diff_x_t"], io["diff_t"], io["z_masked"], io["z_uncond_masked"], 3.0)
    ref = io["diff_net_cfg_out"]
    N = len(guided)
    torch.testing.assert_close(guided, ref[:N], **TOL)  # MAR returns both halves; the first is the guided one
    torch.testing.assert_close(ref[N:, :16], ref[:N, :16], atol=0, rtol=0)


def test_posterior_mean_and_learned_variance(mar):
    head, io = mar
    diff = head.sample_diffusion
    with torch.no_grad():
        out = head.net(io["diff_x_t"], diff.timestep_map[io["diff_t_idx"]], io["z_masked"])
        pmv = diff.p_mean_variance(out, io["diff_x_t"], io["diff_t_idx"])
    for name in ("mean", "variance", "log_variance", "pred_xstart"):
        torch.testing.assert_close(pmv[name], io[f"pmv_{name}"], atol=1e-4, rtol=1e-4)


def test_temperature_zero_cfg_chain(mar):
    head, io = mar
    out = head.sample(io["z_masked"], uncond_NC=io["z_uncond_masked"], cfg=3.0, temperature=0.0, noise_ND=io["chain_noise"])
    ref = io["chain_temp0_cfg_out"]
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_respacing_and_bad_settings():
    assert respaced_timesteps(1000, 100)[:3].tolist() == [0, 10, 20] and respaced_timesteps(1000, 100)[-1] == 999
    assert respaced_timesteps(1000, 1000).tolist() == list(range(1000))
    with pytest.raises(Exception, match="sampling_steps"):
        DiffusionHeadConfig(train_steps=10, sampling_steps=20)


def test_training_reduces_the_loss_and_sampling_is_seeded():
    torch.manual_seed(0)
    head = DiffusionHead(DiffusionHeadConfig(token_dim=2, cond_dim=4, width=32, depth=2, train_steps=100, sampling_steps=20))
    head.net.init_weights()
    cond = torch.eye(4)[torch.arange(64) % 4]
    x0 = (cond[:, :2] * 2 - 1) * 0.8  # a per-condition target
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = head.loss(x0, cond, generator=g).item()
    for _ in range(150):
        loss = head.loss(x0, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    a = head.sample(cond[:8], generator=torch.Generator().manual_seed(1))
    b = head.sample(cond[:8], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (8, 2)
    weight = torch.zeros(64)
    weight[:5] = 1
    assert torch.isfinite(head.loss(x0, cond, weight_N=weight))


def test_x0_clip_bounds_the_clean_prediction_and_is_validated():
    from arforge.config import ConfigError

    torch.manual_seed(0)
    head = DiffusionHead(DiffusionHeadConfig(token_dim=3, cond_dim=4, width=16, depth=1, sampling_steps=10, learn_sigma=False))
    for p in head.net.parameters():
        torch.nn.init.normal_(p, std=1.0)  # an untrained, wildly wrong eps predictor
    cond = torch.randn(64, 4)
    wild = head.sample(cond, generator=torch.Generator().manual_seed(0))
    clipped = head.sample(cond, generator=torch.Generator().manual_seed(0), x0_clip=2.0)
    assert wild.abs().max() > 10
    assert clipped.abs().max() <= 2.0 + 1e-5  # the last step returns the clamped x0 itself (no noise at t = 0)
    with pytest.raises(ConfigError, match="x0_clip"):
        DiffusionHeadConfig(x0_clip=0.0)
