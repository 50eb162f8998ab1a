"""The ``xar`` family: next-cell flow matching with noisy context (xAR), on the shared backbone.

The latent grid ``(B, c, h, w)`` is cut into cells (:class:`~arforge.generators.orders.Cells`) and
the whole transformer is the flow network: every token is fed noised, cell ``k`` at its own level
``t_k`` (``x_t = (1 - t) noise + t x``, ``t = 1`` is data, drawn logit-normal per cell), attention is
block-causal across cells, and each token's output regresses its own velocity ``x - noise``. Every
block is adaLN-modulated per token by ``class embedding + timestep embedding of its cell``. Because
the context cells are noisy in training too, the model never sees perfectly clean teacher-forced
context (xAR's *noisy context learning*). Sampling (``xar`` sampler) integrates one cell at a time
from noise with the clean earlier cells in the KV cache.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.conditioning import ClassEmbedder
from arforge.generators.timestep import TimestepEmbedder
from arforge.generators.kv_cache import KVCache
from arforge.generators.orders import Cells
from arforge.generators.rope import rope_2d
from arforge.pretrained import PretrainedMixin, register_model


@dataclass
class XARConfig:
    """Configuration of an :class:`XARGenerator`.

    Attributes:
        latent_channels: token width ``c`` (latent channels).
        grid_size: latent grid ``(h, w)``.
        cell_size: cell ``(ch, cw)``; must tile the grid (xAR: 8x8 cells of a 16x16 latent).
        num_classes: classes (a null class is added for CFG when ``class_dropout_prob > 0``).
        class_dropout_prob: label drop probability in training.
        noise_mean / noise_std: logit-normal law of each cell's level ``t = sigmoid(N(mean, std))``.
        sampling_steps: default Euler steps per cell.
        backbone: decoder shape; ``adaln`` is forced to ``"block"`` (per-token modulation).
    """

    latent_channels: int = 16
    grid_size: tuple[int, int] = (16, 16)
    cell_size: tuple[int, int] = (8, 8)
    num_classes: int = 1000
    class_dropout_prob: float = 0.1
    noise_mean: float = 0.0
    noise_std: float = 1.0
    sampling_steps: int = 40
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(adaln="block"))

    def __post_init__(self) -> None:
        (h, w), (ch, cw) = self.grid_size, self.cell_size
        if ch < 1 or cw < 1 or h % ch or w % cw:
            raise ConfigError(f"XARConfig.cell_size={list(self.cell_size)} must tile the {h}x{w} latent grid")
        if self.latent_channels < 1 or self.sampling_steps < 1 or self.noise_std <= 0:
            raise ConfigError("XARConfig needs latent_channels >= 1, sampling_steps >= 1 and noise_std > 0")
        if self.backbone.adaln != "block":  # a copy: never mutate a config object the caller may share
            self.backbone = dataclasses.replace(self.backbone, adaln="block")


@register_model
class XARGenerator(Backbone, PretrainedMixin):
    """Class-conditional next-cell flow model (see the module docstring)."""

    config_class = XARConfig
    model_kind = "generator"
    model_type = "xar"
    default_sampler = "xar"

    def __init__(self, config: XARConfig):
        super().__init__(config.backbone)
        self.config = config
        dim = config.backbone.dim
        self.order = Cells(config.grid_size, config.cell_size)
        self.input_proj = nn.Linear(config.latent_channels, dim)
        self.class_embed = ClassEmbedder(config.num_classes, dim, config.class_dropout_prob)
        self.time_embed = TimestepEmbedder(dim)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.output = nn.Linear(dim, config.latent_channels)
        rows, cols = self.order.grid_coords()
        self.register_buffer("rope_slots", rope_2d(rows, cols, config.backbone.head_dim, config.backbone.rope_base),
                             persistent=False)
        self.register_buffer("cell_of_token", self.order.token_groups(), persistent=False)
        self.init_weights(config.backbone.initializer_range)
        for layer in self.layers:  # adaLN-zero: every block starts as the identity
            nn.init.zeros_(layer.ada_lin[1].weight)
            nn.init.zeros_(layer.ada_lin[1].bias)
        for m in (self.final_ada[1], self.output):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def num_tokens(self) -> int:
        return self.order.num_tokens

    @property
    def num_cells(self) -> int:
        return self.order.num_groups

    def null_condition(self, labels_B: torch.Tensor) -> torch.Tensor:
        return self.class_embed.null_condition(labels_B)

    def tokens(self, latents_BcHW: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, c, h, w)`` -> tokens ``(B, h * w, c)`` in raster order."""
        c, (h, w) = self.config.latent_channels, self.config.grid_size
        if latents_BcHW.ndim != 4 or tuple(latents_BcHW.shape[1:]) != (c, h, w):
            raise ValueError(f"expected latents (B, {c}, {h}, {w}), got {tuple(latents_BcHW.shape)}")
        return latents_BcHW.flatten(2).transpose(1, 2)

    def velocity(self, x_BTc: torch.Tensor, t_BT: torch.Tensor, labels_B: torch.Tensor, idx_T: torch.Tensor,
                 cache: KVCache | None = None) -> torch.Tensor:
        """Velocity ``(B, T, c)`` of tokens ``x_BTc`` at raster indices ``idx_T`` and levels ``t_BT``
        (``[0, 1]``, 1 = data). Without ``cache`` the T tokens attend block-causally among themselves
        (training, all N tokens); with ``cache`` their K/V are written at their slots and each query
        sees the valid slots of its own and earlier cells (the clean earlier cells and the current cell)."""
        B, T, _ = x_BTc.shape
        cond_BTC = self.class_embed(labels_B) + self.time_embed(t_BT.reshape(-1) * 1000).view(B, T, -1)
        h_BTC = self.input_proj(x_BTc)
        rope = self.rope_slots[idx_T]
        if cache is None:
            groups = self.cell_of_token[idx_T]
            mask = (groups[None, :] <= groups[:, None])[None, None]
            h_BTC = self.run_layers(h_BTC, rope, mask, cond_BD=cond_BTC)
        else:
            pos_BT = idx_T[None].expand(B, T)
            cache.mark_valid(pos_BT)
            # valid slots of the query's cell and earlier ones: the previous cell fed together with the
            # current one must not see it (block-causal, as in training)
            cells_S = self.cell_of_token
            mask = cache.attention_mask(pos_BT, causal=False) & (cells_S[None, :] <= cells_S[idx_T][:, None])[None, None]
            h_BTC = self.run_layers(h_BTC, rope, mask, cache, pos_BT, cond_BTC)
        shift, scale = self.final_ada(cond_BTC).chunk(2, dim=-1)
        return self.output(h_BTC * (1 + scale) + shift).float()

    def loss(self, latents_BcHW: torch.Tensor, labels_B: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noisy-context flow matching: each cell noised at its own level, velocity MSE over all tokens."""
        x0 = self.tokens(latents_BcHW)
        B, N, _ = x0.shape
        dev = x0.device
        z = torch.randn(B, self.num_cells, device=dev, generator=generator)
        t_BN = torch.sigmoid(z * self.config.noise_std + self.config.noise_mean)[:, self.cell_of_token]
        noise = torch.randn(x0.shape, device=dev, dtype=x0.dtype, generator=generator)
        xt = (1 - t_BN[..., None]) * noise + t_BN[..., None] * x0
        v = self.velocity(xt, t_BN, labels_B, torch.arange(N, device=dev))
        return (v - (x0 - noise)).pow(2).mean()

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device=None) -> KVCache:
        """Empty KV cache with one slot per latent token."""
        return super().new_cache(batch_size, self.num_tokens, dtype=dtype, device=device)
