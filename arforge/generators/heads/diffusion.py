"""``DiffusionHead``: MAR's per-token diffusion loss and sampler for continuous tokens.

The trunk gives one condition vector per token; a small MLP with adaLN residual blocks
(:class:`AdaLNMLP`, MAR's ``SimpleMLPAdaLN``, same parameter names) predicts the noise ``eps`` and,
with ``learn_sigma``, a variance interpolation value (ADM's learned range). The noise schedule is
``diffusers``' (``DDPMScheduler``, ``squaredcos_cap_v2`` = the improved-DDPM cosine schedule with
``max_beta`` 0.999, 1000 training steps); sampling walks an evenly respaced subset of it
(``sampling_steps``, MAR: 100) with the ADM posterior, so that MAR's released heads sample exactly as
in MAR. One interface for every head: ``loss(x0, cond)`` and ``sample(cond, ...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.timestep import TimestepEmbedder


# ---------------------------------------------------------------------------------------------- network
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AdaLNResBlock(nn.Module):
    """``x + gate * mlp(modulate(LN(x), shift, scale))`` with ``(shift, scale, gate)`` from the condition."""

    def __init__(self, width: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x_NW: torch.Tensor, y_NW: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(y_NW).chunk(3, dim=-1)
        return x_NW + gate * self.mlp(modulate(self.in_ln(x_NW), shift, scale))


class AdaLNFinalLayer(nn.Module):
    """``linear(modulate(LN_noaffine(x), shift, scale))``."""

    def __init__(self, width: int, out_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x_NW: torch.Tensor, y_NW: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(y_NW).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x_NW), shift, scale))


class AdaLNMLP(nn.Module):
    """MAR's ``SimpleMLPAdaLN``: ``(x_t (N, D), t (N,), cond (N, C)) -> (N, D or 2D)``.

    ``y = time_embed(t) + cond_embed(cond)`` drives every block's adaLN; the output has ``2 D``
    channels (``[eps, variance value]``) when ``learn_sigma``.
    """

    def __init__(self, token_dim: int, cond_dim: int, width: int, depth: int, learn_sigma: bool = True):
        super().__init__()
        self.token_dim, self.learn_sigma = token_dim, learn_sigma
        self.time_embed = TimestepEmbedder(width)
        self.cond_embed = nn.Linear(cond_dim, width)
        self.input_proj = nn.Linear(token_dim, width)
        self.res_blocks = nn.ModuleList(AdaLNResBlock(width) for _ in range(depth))
        self.final_layer = AdaLNFinalLayer(width, token_dim * (2 if learn_sigma else 1))

    def init_weights(self) -> None:
        """MAR's init: Xavier linears, N(0, 0.02) time MLP, zero adaLN and output layers."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        for block in [*self.res_blocks, self.final_layer]:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def forward(self, x_ND: torch.Tensor, t_N: torch.Tensor, cond_NC: torch.Tensor) -> torch.Tensor:
        y = self.time_embed(t_N) + self.cond_embed(cond_NC)
        h = self.input_proj(x_ND)
        for block in self.res_blocks:
            h = block(h, y)
        return self.final_layer(h, y)

    def forward_with_cfg(self, x_ND: torch.Tensor, t_N: torch.Tensor, cond_NC: torch.Tensor, uncond_NC: torch.Tensor,
                         scale: float | torch.Tensor) -> torch.Tensor:
        """Guided output for the conditional rows: ``eps = eps_u + scale * (eps_c - eps_u)``; the variance
        channels are the conditional branch's. ``scale`` may be per row ``(N,)``."""
        out = self(torch.cat([x_ND, x_ND]), torch.cat([t_N, t_N]), torch.cat([cond_NC, uncond_NC]))
        out_c, out_u = out.chunk(2)
        scale = torch.as_tensor(scale, dtype=out.dtype, device=out.device).reshape(-1, 1)
        eps = out_u[:, : self.token_dim] + scale * (out_c[:, : self.token_dim] - out_u[:, : self.token_dim])
        return torch.cat([eps, out_c[:, self.token_dim:]], dim=-1)


# ---------------------------------------------------------------------------------------------- schedule
class GaussianDiffusion:
    """Forward process + ADM posterior for a (possibly respaced) subset of a diffusers schedule.

    ``timesteps`` (ascending original indices) select the steps; ``alphas_cumprod`` come from the
    ``diffusers`` scheduler. Coefficients are float64 and cast to float32 when gathered (as ADM).
    """

    def __init__(self, alphas_cumprod_T: torch.Tensor, timesteps: torch.Tensor):
        ac = alphas_cumprod_T.double()[timesteps]
        ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
        betas = 1 - ac / ac_prev
        self.timestep_map = timesteps.long()
        self.betas, self.alphas_cumprod = betas, ac
        self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod = ac.sqrt(), (1 - ac).sqrt()
        self.sqrt_recip_alphas_cumprod, self.sqrt_recipm1_alphas_cumprod = (1 / ac).sqrt(), (1 / ac - 1).sqrt()
        post_var = betas * (1 - ac_prev) / (1 - ac)
        self.posterior_variance = post_var
        self.posterior_log_variance_clipped = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
        self.posterior_mean_coef1 = betas * ac_prev.sqrt() / (1 - ac)
        self.posterior_mean_coef2 = (1 - ac_prev) * (1 - betas).sqrt() / (1 - ac)
        self.log_betas = torch.log(betas)

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @staticmethod
    def _at(arr: torch.Tensor, t_N: torch.Tensor) -> torch.Tensor:
        return arr.to(t_N.device)[t_N].float()[:, None]

    def q_sample(self, x0_ND: torch.Tensor, t_N: torch.Tensor, noise_ND: torch.Tensor) -> torch.Tensor:
        return self._at(self.sqrt_alphas_cumprod, t_N) * x0_ND + self._at(self.sqrt_one_minus_alphas_cumprod, t_N) * noise_ND

    def q_posterior(self, x0_ND, xt_ND, t_N) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clipped log-variance of ``q(x_{t-1} | x_t, x_0)``."""
        mean = self._at(self.posterior_mean_coef1, t_N) * x0_ND + self._at(self.posterior_mean_coef2, t_N) * xt_ND
        return mean, self._at(self.posterior_log_variance_clipped, t_N).expand_as(xt_ND)

    def p_mean_variance(self, out_NE: torch.Tensor, xt_ND: torch.Tensor, t_N: torch.Tensor,
                        x0_clip: float | None = None) -> dict[str, torch.Tensor]:
        """``mean``, ``variance``, ``log_variance``, ``pred_xstart`` of ``p(x_{t-1} | x_t)`` from the net output.

        ``out_NE`` is ``eps`` ``(N, D)`` or ``[eps, v]`` ``(N, 2 D)`` (learned range: the log-variance is
        ``(v+1)/2 * log beta_t + (1-(v+1)/2) * log posterior_variance_t``). ``x0_clip`` clamps the
        predicted ``x_0`` (default: no clipping, as MAR).
        """
        D = xt_ND.shape[-1]
        eps = out_NE[:, :D]
        if out_NE.shape[-1] == 2 * D:
            frac = (out_NE[:, D:] + 1) / 2
            log_var = frac * self._at(self.log_betas, t_N) + (1 - frac) * self._at(self.posterior_log_variance_clipped, t_N)
        else:  # fixed small variance
            log_var = self._at(self.posterior_log_variance_clipped, t_N).expand_as(xt_ND)
        x0 = self._at(self.sqrt_recip_alphas_cumprod, t_N) * xt_ND - self._at(self.sqrt_recipm1_alphas_cumprod, t_N) * eps
        if x0_clip is not None:
            x0 = x0.clamp(-x0_clip, x0_clip)
        mean, _ = self.q_posterior(x0, xt_ND, t_N)
        return {"mean": mean, "variance": torch.exp(log_var), "log_variance": log_var, "pred_xstart": x0}


def _normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


# ---------------------------------------------------------------------------------------------- head
@dataclass
class DiffusionHeadConfig:
    """``token_dim``: channels of one continuous token; ``cond_dim``: trunk vector width; ``width`` /
    ``depth``: MLP size (MAR-B: 1024 / 6). ``train_steps``: diffusion steps of the cosine schedule;
    ``sampling_steps``: evenly respaced steps at sampling (MAR: 100). ``learn_sigma``: predict the
    variance too (ADM learned range, loss = MSE + VB). ``batch_mul``: each token is trained with this
    many independent (t, noise) draws (MAR: 4). ``x0_clip``: at sampling, clamp the predicted clean
    token to ``[-x0_clip, x0_clip]`` before the posterior step (ADM's ``clip_denoised`` for a latent
    range; ``None`` = MAR). The cosine schedule's last step has ``alpha_bar ~ 2e-9``, so ``x0`` is the
    eps error times ~2e4 there: only a long-trained head is accurate enough without the clamp."""

    token_dim: int = 16
    cond_dim: int = 768
    width: int = 1024
    depth: int = 6
    train_steps: int = 1000
    sampling_steps: int = 100
    learn_sigma: bool = True
    batch_mul: int = 4
    x0_clip: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("token_dim", "cond_dim", "width", "depth", "train_steps", "sampling_steps", "batch_mul"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DiffusionHeadConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.x0_clip is not None and self.x0_clip <= 0:
            raise ConfigError(f"DiffusionHeadConfig.x0_clip must be > 0 (or null), got {self.x0_clip}")
        if self.sampling_steps > self.train_steps:
            raise ConfigError(f"sampling_steps ({self.sampling_steps}) cannot exceed train_steps ({self.train_steps})")


def respaced_timesteps(train_steps: int, sampling_steps: int) -> torch.Tensor:
    """Evenly spaced original step indices, ascending (ADM's ``space_timesteps(T, "K")`` = ``round(linspace(0, T-1, K))``)."""
    if sampling_steps == 1:
        return torch.tensor([train_steps - 1])
    stride = (train_steps - 1) / (sampling_steps - 1)
    return torch.tensor([round(i * stride) for i in range(sampling_steps)], dtype=torch.long)


class DiffusionHead(nn.Module):
    """Per-token diffusion head (MAR's ``DiffLoss``; the MLP is ``self.net``, as MAR names it)."""

    def __init__(self, config: DiffusionHeadConfig):
        super().__init__()
        from diffusers import DDPMScheduler

        self.config = config
        self.net = AdaLNMLP(config.token_dim, config.cond_dim, config.width, config.depth, config.learn_sigma)
        scheduler = DDPMScheduler(num_train_timesteps=config.train_steps, beta_schedule="squaredcos_cap_v2")
        # diffusers defines the betas; the cumulative product is taken in float64 (its own is float32)
        self.alphas_cumprod_T = torch.cumprod(1 - scheduler.betas.double(), dim=0)
        self.train_diffusion = GaussianDiffusion(self.alphas_cumprod_T, torch.arange(config.train_steps))
        self.set_sampling_steps(config.sampling_steps)

    def set_sampling_steps(self, steps: int) -> None:
        """Sample with ``steps`` evenly respaced steps of the training schedule from now on."""
        if not 1 <= steps <= self.config.train_steps:
            raise ValueError(f"sampling steps must lie in [1, {self.config.train_steps}], got {steps}")
        self.sample_diffusion = GaussianDiffusion(self.alphas_cumprod_T, respaced_timesteps(self.config.train_steps, steps))

    def loss(self, x0_ND: torch.Tensor, cond_NC: torch.Tensor, weight_N: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean diffusion loss of tokens ``x0_ND`` under conditions ``cond_NC`` (``weight_N``: 0/1 token mask).

        Each token is repeated ``batch_mul`` times with its own ``t`` and noise. Loss per draw: MSE on
        ``eps`` (+ the VB term for the variance with a stop-gradient on the mean, ADM's hybrid loss).
        """
        m = self.config.batch_mul
        x0 = x0_ND.repeat(m, 1)
        cond = cond_NC.repeat(m, 1)
        diff = self.train_diffusion
        t = torch.randint(0, diff.num_steps, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        xt = diff.q_sample(x0, t, noise)
        out = self.net(xt, t, cond)
        D = x0.shape[-1]
        loss = (out[:, :D] - noise).pow(2).mean(-1)
        if self.config.learn_sigma:
            frozen = torch.cat([out[:, :D].detach(), out[:, D:]], dim=-1)
            pred = diff.p_mean_variance(frozen, xt, t)
            true_mean, true_logvar = diff.q_posterior(x0, xt, t)
            kl = _normal_kl(true_mean, true_logvar, pred["mean"], pred["log_variance"]).mean(-1) / math.log(2.0)
            # at t = 0 ADM scores the decoder likelihood; for continuous tokens: the Gaussian NLL (in bits)
            nll = 0.5 * (math.log(2 * math.pi) + pred["log_variance"] + (x0 - pred["mean"]) ** 2
                         / pred["variance"]).mean(-1) / math.log(2.0)
            loss = loss + torch.where(t == 0, nll, kl)
        if weight_N is None:
            return loss.mean()
        w = weight_N.reshape(-1).float().repeat(m)
        return (loss * w).sum() / w.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(self, cond_NC: torch.Tensor, *, uncond_NC: torch.Tensor | None = None, cfg: float | torch.Tensor = 1.0,
               temperature: float = 1.0, generator: torch.Generator | None = None,
               noise_ND: torch.Tensor | None = None, x0_clip: float | None = None) -> torch.Tensor:
        """Tokens ``(N, token_dim)`` for conditions ``cond_NC``, all tokens denoised together (batched).

        With ``uncond_NC`` and ``cfg != 1`` the eps prediction is guided (``cfg`` scalar or per token
        ``(N,)``). ``temperature`` scales the injected noise (0 = deterministic mean path).
        ``noise_ND``: the initial noise (default: drawn from ``generator``). ``x0_clip``: overrides the
        config's clamp of the predicted clean token.
        """
        diff = self.sample_diffusion
        N, D = cond_NC.shape[0], self.config.token_dim
        x = noise_ND if noise_ND is not None else torch.randn(N, D, device=cond_NC.device, generator=generator)
        guided = uncond_NC is not None and not (isinstance(cfg, (int, float)) and cfg == 1.0)
        clip = self.config.x0_clip if x0_clip is None else x0_clip
        for i in reversed(range(diff.num_steps)):
            t_idx = torch.full((N,), i, device=x.device, dtype=torch.long)
            t_orig = diff.timestep_map.to(x.device)[t_idx]
            if guided:
                out = self.net.forward_with_cfg(x, t_orig, cond_NC, uncond_NC, cfg)
            else:
                out = self.net(x, t_orig, cond_NC)
            pmv = diff.p_mean_variance(out, x, t_idx, clip)
            x = pmv["mean"]
            if i > 0 and temperature > 0:
                z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
                x = x + torch.exp(0.5 * pmv["log_variance"]) * z * temperature
        return x
