"""The Llama-style decoder shared by every generation order.

Pre-norm blocks (RMSNorm, bias-free fused ``wqkv``/``wo`` attention with rotary positions, SwiGLU
``w1/w3/w2`` MLP). Attention always takes an *explicit* boolean mask and explicit per-token rotary
tables, so the same blocks run causal raster training, block-causal orders and KV-cached decoding
with holes (see :mod:`arforge.generators.kv_cache`). Module names follow LlamaGen's
``Transformer`` (``layers.N.attention.wqkv``, ``layers.N.feed_forward.w1`` ..., ``norm``), so
LlamaGen checkpoints load without renaming.

Block options cover the other reference families with the same module names: ``norm_type="layer"``
(LayerNorm with bias), ``mlp_type="gelu"`` (``w2(gelu(w1 x))``, hidden ``mlp_ratio * dim``) and
biases on the projections give a timm ViT block (MAR); ``rope=None`` in the forward pass means no
rotary positions (models with learned absolute positions). ``norm_type="layer_noaffine"``,
``mlp_type="gelu_tanh"``, ``qk_l2_norm`` and ``adaln`` give VAR's adaLN block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from arforge.generators.kv_cache import KVCache
from arforge.generators.rope import apply_rope


def find_multiple(n: int, k: int) -> int:
    """Smallest multiple of ``k`` that is ``>= n``."""
    return n if n % k == 0 else n + k - (n % k)


@dataclass
class BackboneConfig:
    """Shape and regularisation of the decoder stack (LlamaGen ``ModelArgs`` names)."""

    dim: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    initializer_range: float = 0.02
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    ffn_dropout_p: float = 0.0
    drop_path_rate: float = 0.0
    norm_type: Literal["rms", "layer", "layer_noaffine"] = "rms"
    mlp_type: Literal["swiglu", "gelu", "gelu_tanh"] = "swiglu"
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    proj_bias: bool = False
    mlp_bias: bool = False
    qk_l2_norm: bool = False
    adaln: Literal["none", "block", "shared"] = "none"

    def __post_init__(self) -> None:
        if self.norm_type not in ("rms", "layer", "layer_noaffine"):
            raise ValueError(f"norm_type must be 'rms', 'layer' or 'layer_noaffine', got {self.norm_type!r}")
        if self.mlp_type not in ("swiglu", "gelu", "gelu_tanh"):
            raise ValueError(f"mlp_type must be 'swiglu', 'gelu' or 'gelu_tanh', got {self.mlp_type!r}")
        if self.adaln not in ("none", "block", "shared"):
            raise ValueError(f"adaln must be 'none', 'block' or 'shared', got {self.adaln!r}")
        if self.dim % self.n_head:
            raise ValueError(f"dim={self.dim} must be divisible by n_head={self.n_head}")
        kv = self.n_kv_head or self.n_head
        if self.n_head % kv:
            raise ValueError(f"n_head={self.n_head} must be divisible by n_kv_head={kv}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def ffn_hidden(self) -> int:
        if self.mlp_type in ("gelu", "gelu_tanh"):
            return int(self.dim * self.mlp_ratio)
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return find_multiple(hidden, self.multiple_of)


class RMSNorm(nn.Module):
    """``x / rms(x) * weight``, normalised in float32 and cast back (LlamaGen numerics)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def make_norm(cfg: BackboneConfig) -> nn.Module:
    """The block norm ``cfg`` asks for: :class:`RMSNorm`, ``nn.LayerNorm`` with affine weights or
    without any (VAR's ``ln_wo_grad``)."""
    if cfg.norm_type == "rms":
        return RMSNorm(cfg.dim, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_type == "layer")


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


#: VAR clamps the learned per-head log-scale of l2-normalised attention at log(100)
QK_L2_MAX_LOG_SCALE = math.log(100.0)


class Attention(nn.Module):
    """Multi-head (optionally grouped-query) attention with rotary q/k and an explicit mask.

    ``qk_l2_norm`` (VAR): q and k are l2-normalised per head, q is multiplied by
    ``exp(min(scale_mul_1H11, log 100))`` (a learned per-head log-scale, initialised to log 4) and
    the softmax scale is 1 instead of ``1/sqrt(head_dim)``.
    """

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.wqkv = nn.Linear(cfg.dim, (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_dim, bias=cfg.qkv_bias)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=cfg.proj_bias)
        self.attn_dropout_p = cfg.attn_dropout_p
        self.resid_dropout = nn.Dropout(cfg.resid_dropout_p)
        self.qk_l2_norm = cfg.qk_l2_norm
        if cfg.qk_l2_norm:
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, cfg.n_head, 1, 1), math.log(4.0)))

    def forward(
        self,
        x_BTC: torch.Tensor,
        rope_TP2: torch.Tensor,
        mask_B1TS: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
        pos_BT: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``mask`` is boolean (True = attend) over keys ``S`` (= T without cache, = L_max with cache);
        ``None`` means plain causal over the T inputs. ``rope_TP2=None``: no rotary positions."""
        B, T, C = x_BTC.shape
        kv_dim = self.n_kv_head * self.head_dim
        q, k, v = self.wqkv(x_BTC).split([C, kv_dim, kv_dim], dim=-1)
        q_BTHD = q.view(B, T, self.n_head, self.head_dim)
        k_BTHD = k.view(B, T, self.n_kv_head, self.head_dim)
        if self.qk_l2_norm:
            q_BTHD = F.normalize(q_BTHD, dim=-1) * self.scale_mul_1H11.clamp_max(QK_L2_MAX_LOG_SCALE).exp().transpose(1, 2)
            k_BTHD = F.normalize(k_BTHD, dim=-1)
        if rope_TP2 is not None:
            q_BTHD, k_BTHD = apply_rope(q_BTHD, rope_TP2), apply_rope(k_BTHD, rope_TP2)
        v_BTHD = v.view(B, T, self.n_kv_head, self.head_dim)
        if cache is not None:
            if pos_BT is None:
                raise ValueError("pos_BT is required when decoding with a KV cache")
            k_BTHD, v_BTHD = cache.write(layer, pos_BT, k_BTHD, v_BTHD)
            k_BTHD, v_BTHD = k_BTHD.to(q_BTHD.dtype), v_BTHD.to(q_BTHD.dtype)
        q_BHTD, k_BHSD, v_BHSD = (t.transpose(1, 2) for t in (q_BTHD, k_BTHD, v_BTHD))
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k_BHSD = k_BHSD.repeat_interleave(rep, dim=1)
            v_BHSD = v_BHSD.repeat_interleave(rep, dim=1)
        out_BHTD = F.scaled_dot_product_attention(
            q_BHTD,
            k_BHSD,
            v_BHSD,
            attn_mask=mask_B1TS,
            is_causal=mask_B1TS is None,
            dropout_p=self.attn_dropout_p if self.training else 0.0,
            scale=1.0 if self.qk_l2_norm else None,
        )
        return self.resid_dropout(self.wo(out_BHTD.transpose(1, 2).reshape(B, T, C)))


class FeedForward(nn.Module):
    """SwiGLU MLP ``w2(silu(w1 x) * w3 x)``, or ``w2(gelu(w1 x))`` with the exact erf GELU
    (``mlp_type="gelu"``, timm ViT) or its tanh approximation (``"gelu_tanh"``, VAR)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.gated = cfg.mlp_type == "swiglu"
        self.gelu_approximate = "tanh" if cfg.mlp_type == "gelu_tanh" else "none"
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=cfg.mlp_bias)
        if self.gated:
            self.w3 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=cfg.mlp_bias)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.dim, bias=cfg.mlp_bias)
        self.ffn_dropout = nn.Dropout(cfg.ffn_dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))
        return self.ffn_dropout(self.w2(F.gelu(self.w1(x), approximate=self.gelu_approximate)))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: ``x + attn(norm(x))`` then ``h + mlp(norm(h))``.

    With adaLN (VAR) a condition vector ``cond_BD`` modulates both branches:
    ``x + gamma1 * attn(norm(x) * (1 + scale1) + shift1)`` and the same for the MLP, the six
    ``(B, 1, C)`` vectors in VAR's order ``gamma1, gamma2, scale1, scale2, shift1, shift2``. They
    come from ``ada_lin`` (SiLU -> Linear(C, 6C)) per block (``adaln="block"``; ``cond_BD`` may also be
    per token, ``(B, T, C)``, giving ``(B, T, C)`` modulations, as xAR's per-cell timesteps), or, with
    ``adaln="shared"``, ``cond_BD`` is already the shared projection ``(B, 1, 6, C)`` and the block
    adds its learned ``ada_gss``.
    """

    def __init__(self, cfg: BackboneConfig, drop_path: float = 0.0):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = make_norm(cfg)
        self.ffn_norm = make_norm(cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.adaln = cfg.adaln
        if cfg.adaln == "block":
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim))
        elif cfg.adaln == "shared":
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, cfg.dim) / cfg.dim ** 0.5)

    def forward(self, x, rope, mask, cache=None, layer=0, pos_BT=None, cond_BD=None):
        if self.adaln == "none":
            h = x + self.drop_path(self.attention(self.attention_norm(x), rope, mask, cache, layer, pos_BT))
            return h + self.drop_path(self.feed_forward(self.ffn_norm(h)))
        if cond_BD is None:
            raise ValueError("an adaLN block needs the condition vector cond_BD")
        if self.adaln == "block":
            mod_B16C = self.ada_lin(cond_BD).unflatten(-1, (6, x.shape[-1]))
            if mod_B16C.dim() == 3:  # one condition per sample -> broadcast over tokens
                mod_B16C = mod_B16C[:, None]
        else:
            mod_B16C = cond_BD + self.ada_gss
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mod_B16C.unbind(2)
        attn_in = self.attention_norm(x) * (scale1 + 1) + shift1
        h = x + self.drop_path(self.attention(attn_in, rope, mask, cache, layer, pos_BT) * gamma1)
        ffn_in = self.ffn_norm(h) * (scale2 + 1) + shift2
        return h + self.drop_path(self.feed_forward(ffn_in) * gamma2)


class Backbone(nn.Module):
    """Stack of :class:`TransformerBlock` (``layers``) and a final norm (``norm``).

    Generators subclass it and add their embeddings and head, so parameter names stay flat
    (``layers.0.attention.wqkv.weight``, ``norm.weight``) exactly as in LlamaGen checkpoints.
    """

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.backbone_config = cfg
        rates = [cfg.drop_path_rate * i / max(cfg.n_layer - 1, 1) for i in range(cfg.n_layer)]  # linear in depth
        self.layers = nn.ModuleList(TransformerBlock(cfg, rates[i]) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg)

    def run_layers(
        self,
        h_BTC: torch.Tensor,
        rope_TP2: torch.Tensor,
        mask_B1TS: torch.Tensor | None = None,
        cache: KVCache | None = None,
        pos_BT: torch.Tensor | None = None,
        cond_BD: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """All blocks then the final norm. With ``cache``, new K/V are written at ``pos_BT`` first.
        ``cond_BD``: the adaLN condition (blocks with ``adaln != "none"``)."""
        for i, layer in enumerate(self.layers):
            h_BTC = layer(h_BTC, rope_TP2, mask_B1TS, cache, i, pos_BT, cond_BD)
        return self.norm(h_BTC)

    def new_cache(self, batch_size: int, max_len: int, dtype: torch.dtype | None = None, device=None) -> KVCache:
        """An empty :class:`KVCache` sized for this backbone."""
        ref = next(self.layers.parameters())
        cfg = self.backbone_config
        return KVCache(
            cfg.n_layer, batch_size, max_len, cfg.kv_heads, cfg.head_dim,
            dtype=dtype or ref.dtype, device=device or ref.device,
        )

    def init_weights(self, std: float) -> None:
        """LlamaGen init: normal(0, std) for Linear/Embedding weights, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
