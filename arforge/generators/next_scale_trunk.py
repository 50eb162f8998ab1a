"""The next-scale trunk shared by VAR and FlowAR: a class-conditional block-causal transformer over a
token pyramid (:class:`~arforge.generators.orders.NextScale`), with VAR's adaLN blocks, learned
absolute + level positions and a scale-wise KV cache; everything of VAR but the output head.

Non-backbone parameter names are VAR's (``class_emb``, ``pos_start``, ``pos_1LC``, ``lvl_embed``,
``word_embed``, ``shared_ada_lin``, ``head_nm.ada_lin``); :mod:`arforge.interop.var` maps VAR's
block names onto the backbone's explicitly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.kv_cache import KVCache
from arforge.generators.orders import NextScale
from arforge.generators.presets import resolve_preset


#: VAR's 256 px token pyramid (L = 680)
VAR_PATCH_NUMS_256 = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]
#: VAR's 512 px token pyramid (L = 2240; VAR-d36-s)
VAR_PATCH_NUMS_512 = [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]


def var_backbone(depth: int = 16, shared_adaln: bool = False) -> BackboneConfig:
    """VAR-d``depth``: width ``64 depth``, ``depth`` heads of 64, drop-path ``0.1 depth / 24``."""
    return BackboneConfig(
        dim=64 * depth, n_layer=depth, n_head=depth, norm_type="layer_noaffine", norm_eps=1e-6,
        mlp_type="gelu_tanh", mlp_ratio=4.0, qkv_bias=True, proj_bias=True, mlp_bias=True, qk_l2_norm=True,
        adaln="shared" if shared_adaln else "block", drop_path_rate=0.1 * depth / 24,
    )


@dataclass
class NextScaleTrunkConfig:
    """The next-scale trunk shared by VAR and FlowAR.

    ``latent_channels`` / ``patch_nums``: width of the per-scale inputs (the tokenizer's code or
    latent channels) and token-map sides. ``num_classes``: classes (a null class is always added for
    CFG); ``class_dropout_prob``: label dropout in training (applied only in training mode, unlike
    VAR). ``init_std`` (``-1`` = VAR's ``sqrt(1 / (3 dim))``), ``init_head``, ``init_adaln``,
    ``init_adaln_gamma``: VAR's initialisation scales. ``backbone``: blocks (:func:`var_backbone`).
    """

    latent_channels: int = 32
    patch_nums: list[int] = field(default_factory=lambda: list(VAR_PATCH_NUMS_256))
    num_classes: int = 1000
    class_dropout_prob: float = 0.1
    init_std: float = -1.0
    init_head: float = 0.02
    init_adaln: float = 0.5
    init_adaln_gamma: float = 1e-5
    backbone: BackboneConfig = field(default_factory=var_backbone)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.backbone.adaln == "none":
            raise ConfigError(f"{name}.backbone.adaln must be 'block' or 'shared': the class condition enters through adaLN")
        if self.latent_channels < 1 or self.num_classes < 1:
            raise ConfigError(f"{name}: latent_channels >= 1 and num_classes >= 1 are required")
        if not 0.0 <= self.class_dropout_prob < 1.0:
            raise ConfigError(f"{name}.class_dropout_prob must lie in [0, 1), got {self.class_dropout_prob}")
        NextScale(self.patch_nums)  # validates patch_nums


class AdaLNBeforeHead(nn.Module):
    """``norm(x) * (1 + scale) + shift`` with ``(scale, shift) = ada_lin(cond)`` (``x`` is already normalised)."""

    def __init__(self, dim: int):
        super().__init__()
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, normed_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, normed_BLC.shape[-1]).unbind(2)
        return normed_BLC * (scale + 1) + shift


class NextScaleTrunk(Backbone):
    """Class-conditional block-causal transformer over a token pyramid: everything of VAR but the
    output head. :meth:`hidden` (teacher forcing) and :meth:`decode_scale_hidden` (KV-cached, one
    scale) return the adaLN-modulated final features ``(B, *, dim)`` the head reads. Configs take the
    ``var_d*`` presets (``preset: var_d16``)."""

    preset_family = "var"

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], source: str | None = None):
        """Build from a config dict. ``backbone`` fields are laid over VAR's block defaults
        (:func:`var_backbone`) for ``depth`` (an optional shortcut key; default: ``backbone.n_layer``
        or 16), so a config only states what differs from VAR-d<depth>; ``preset: var_d<depth>``
        (:mod:`arforge.generators.presets`) is expanded first."""
        config = resolve_preset(cls.preset_family, config)
        backbone = dict(config.get("backbone") or {})
        depth = int(config.pop("depth", backbone.get("n_layer", 16)))
        config["backbone"] = {**asdict(var_backbone(depth)), **backbone}
        return super().from_config_dict(config, source)

    def __init__(self, config: NextScaleTrunkConfig):
        super().__init__(config.backbone)
        self.config = config
        C = config.backbone.dim
        self.order = NextScale(config.patch_nums)
        first_l = self.order.scale_sizes[0]
        self.class_emb = nn.Embedding(config.num_classes + 1, C)
        self.pos_start = nn.Parameter(torch.zeros(1, first_l, C))
        self.pos_1LC = nn.Parameter(torch.zeros(1, self.order.num_tokens, C))
        self.lvl_embed = nn.Embedding(self.order.num_scales, C)
        self.word_embed = nn.Linear(config.latent_channels, C)
        if config.backbone.adaln == "shared":
            self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.head_nm = AdaLNBeforeHead(C)
        self.register_buffer("lvl_1L", self.order.level_L()[None], persistent=False)
        self.register_buffer("mask_LL", self.order.block_causal_mask(), persistent=False)

    def init_var_weights(self) -> None:
        """VAR's init: truncated normal ``init_std`` everywhere, head scaled by ``init_head``, adaLN
        scale/shift rows by ``init_adaln`` and gamma rows by ``init_adaln_gamma``, residual output
        projections divided by ``sqrt(2 depth)``."""
        cfg, C = self.config, self.config.backbone.dim
        std = cfg.init_std if cfg.init_std > 0 else math.sqrt(1 / C / 3)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for p in (self.pos_start, self.pos_1LC):
            nn.init.trunc_normal_(p, std=std)
        with torch.no_grad():
            if isinstance(getattr(self, "head", None), nn.Linear):
                self.head.weight.mul_(cfg.init_head)
            self.head_nm.ada_lin[-1].weight.mul_(cfg.init_adaln)
            ada = [layer.ada_lin[-1] for layer in self.layers if hasattr(layer, "ada_lin")]
            if hasattr(self, "shared_ada_lin"):
                ada.append(self.shared_ada_lin[-1])
            for lin in ada:
                lin.weight[2 * C:].mul_(cfg.init_adaln)
                lin.weight[:2 * C].mul_(cfg.init_adaln_gamma)
            for layer in self.layers:
                layer.attention.wo.weight.div_(math.sqrt(2 * cfg.backbone.n_layer))
                layer.feed_forward.w2.weight.div_(math.sqrt(2 * cfg.backbone.n_layer))

    # ------------------------------------------------------------------ properties
    @property
    def num_tokens(self) -> int:
        """Tokens per image over all scales, ``L``."""
        return self.order.num_tokens

    @property
    def num_prefix(self) -> int:
        return 0

    def null_condition(self, labels_B: torch.Tensor) -> torch.Tensor:
        """The null-class labels (CFG's unconditional branch)."""
        return torch.full_like(labels_B, self.config.num_classes)

    def condition(self, labels_B: torch.Tensor) -> torch.Tensor:
        """Class embedding ``(B, C)`` (labels in ``[0, num_classes]``, ``num_classes`` = null); label
        dropout to the null class in training mode only."""
        if labels_B.dim() != 1:
            raise ValueError(f"class labels must have shape (B,), got {tuple(labels_B.shape)}")
        if labels_B.numel() and (labels_B.min() < 0 or labels_B.max() > self.config.num_classes):
            raise ValueError(f"class labels must lie in [0, {self.config.num_classes - 1}] (or {self.config.num_classes} for null)")
        if self.training and self.config.class_dropout_prob > 0:
            drop = torch.rand(labels_B.shape[0], device=labels_B.device) < self.config.class_dropout_prob
            labels_B = torch.where(drop, self.null_condition(labels_B), labels_B)
        return self.class_emb(labels_B)

    def _block_condition(self, cond_BD: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "shared_ada_lin"):
            return self.shared_ada_lin(cond_BD).view(-1, 1, 6, cond_BD.shape[-1])
        return cond_BD

    def _lvl_pos(self, sl: slice) -> torch.Tensor:
        return self.lvl_embed(self.lvl_1L[:, sl]) + self.pos_1LC[:, sl]

    def _start_tokens(self, cond_BD: torch.Tensor) -> torch.Tensor:
        first = self.order.scale_slice(0)
        return cond_BD[:, None] + self.pos_start + self._lvl_pos(first)

    # ------------------------------------------------------------------ trunk
    def hidden(self, x_BLCv_wo_first_l: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        """Teacher-forced head features ``(B, L, dim)`` (float32) from the per-scale inputs of scales
        ``2..K`` ``(B, L - p_1^2, latent_channels)`` and the class embedding ``(B, dim)``; position
        ``i`` predicts token ``i``."""
        L, first_l = self.num_tokens, self.order.scale_sizes[0]
        B = cond_BD.shape[0]
        if x_BLCv_wo_first_l.shape != (B, L - first_l, self.config.latent_channels):
            raise ValueError(f"expected teacher-forcing inputs {(B, L - first_l, self.config.latent_channels)}, "
                             f"got {tuple(x_BLCv_wo_first_l.shape)}")
        x_BLC = torch.cat([self._start_tokens(cond_BD),
                           self.word_embed(x_BLCv_wo_first_l.float()) + self._lvl_pos(slice(first_l, L))], dim=1)
        h_BLC = self.run_layers(x_BLC, None, self.mask_LL[None, None], cond_BD=self._block_condition(cond_BD))
        return self.head_nm(h_BLC.float(), cond_BD.float())

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device=None) -> KVCache:
        """Empty KV cache for ``batch_size`` pyramids (``L`` slots)."""
        return super().new_cache(batch_size, self.num_tokens, dtype=dtype, device=device)

    def decode_scale_hidden(self, si: int, x_BlCv: torch.Tensor | None, cond_BD: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Head features ``(B, p_si^2, dim)`` of scale ``si``. ``x_BlCv``: the scale's inputs
        ``(B, p_si^2, latent_channels)`` (``None`` for ``si = 0``). Writes the scale's K/V into
        ``cache``; queries see every scale up to ``si``."""
        sl = self.order.scale_slice(si)
        if si == 0:
            x_BlC = self._start_tokens(cond_BD)
        else:
            x_BlC = self.word_embed(x_BlCv.float()) + self._lvl_pos(sl)
        B = x_BlC.shape[0]
        pos_Bl = torch.arange(sl.start, sl.stop, device=x_BlC.device)[None].expand(B, -1)
        cache.mark_valid(pos_Bl)
        mask = cache.attention_mask(pos_Bl, causal=False)
        h = self.run_layers(x_BlC, None, mask, cache, pos_Bl, cond_BD=self._block_condition(cond_BD))
        return self.head_nm(h.float(), cond_BD.float())
