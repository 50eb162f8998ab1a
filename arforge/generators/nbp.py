"""The ``nbp`` family: next-block prediction (NBP) on the raster generator's backbone.

The raster generator (:class:`~arforge.generators.raster.RasterGenerator`: class prefix, 2D RoPE,
position-indexed KV cache, categorical head) driven by a :class:`~arforge.generators.orders.NextBlock`
order: a block of ``b`` tokens per forward pass, bidirectional inside a block, causal across blocks,
targets shifted by one block. The prefix is the class token followed by ``b - 1`` learned start
tokens, so the first block is predicted in the prefill pass like every later one (NBP's block of BOS
tokens): ``N / b`` passes per image. With ``block_size: [1, 1]`` it is the raster generator exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators.kv_cache import KVCache
from arforge.generators.orders import NextBlock, Order
from arforge.generators.orders.grouped import group_causal_mask, prefix_groups
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.pretrained import register_model


@dataclass
class NBPConfig(RasterConfig):
    """:class:`RasterConfig` plus ``block_size``: the token tile emitted per pass, one side per grid
    dimension (``[1, w]`` = a row, ``[k, w]`` = k rows, ``[h, w]`` = the whole image, any 2D tile;
    for a ``(t, h, w)`` video grid ``[1, h, w]`` = a frame, ``[1, 1, w]`` = a row, or a 3D tile)."""

    block_size: tuple[int, ...] = (1, 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.condition != "class":
            raise ConfigError("nbp supports class conditioning only (condition: class)")
        grid, block = tuple(self.grid_size), tuple(self.block_size)
        if len(block) != len(grid) or min(block) < 1 or any(g % b for g, b in zip(grid, block)):
            raise ConfigError(f"NBPConfig.block_size={list(block)} must tile the {'x'.join(map(str, grid))} token grid "
                              "(one side per grid dimension)")


@register_model
class NBPGenerator(RasterGenerator):
    """Class-conditional next-block generator (``b`` tokens per pass)."""

    config_class = NBPConfig
    model_type = "nbp"
    default_sampler = "ar"
    decode_causal = False

    def __init__(self, config: NBPConfig):
        super().__init__(config)
        b = self.order.block_size
        self.start_tokens = nn.Parameter(torch.randn(b - 1, config.backbone.dim) * config.backbone.initializer_range)

    def build_order(self, config: NBPConfig) -> Order:
        return NextBlock(config.grid_size, config.block_size)

    @property
    def num_prefix(self) -> int:
        return self.config.cls_token_num + math.prod(self.config.block_size) - 1

    def prefix_embeddings(self, cond: torch.Tensor) -> torch.Tensor:
        cls_B1C = self.cls_embedding(cond)[:, :1]
        start = self.start_tokens[None].expand(cls_B1C.shape[0], -1, -1).to(cls_B1C.dtype)
        return torch.cat([cls_B1C, start], dim=1)

    def prefill(self, cond: torch.Tensor, cache: KVCache, cond_mask_BP: torch.Tensor | None = None) -> torch.Tensor:
        """Encode the class token and start tokens (one bidirectional group) into ``cache``; return
        logits ``(B, b, V)`` of block 0."""
        if cond_mask_BP is not None:
            raise ValueError("nbp is class-conditional: no condition mask")
        P, b = self.num_prefix, self.order.block_size
        x_BPC = self.prefix_embeddings(cond)
        B = x_BPC.shape[0]
        pos_BP = torch.arange(P, device=x_BPC.device)[None].expand(B, P)
        cache.mark_valid(pos_BP)
        mask = torch.zeros(B, 1, P, cache.max_len, dtype=torch.bool, device=x_BPC.device)
        mask[..., :P] = group_causal_mask(prefix_groups(P, b)).to(x_BPC.device)
        h_BPC = self.run_layers(self.tok_dropout(x_BPC), self.rope_slots[:P], mask, cache, pos_BP)
        return self.head_logits(h_BPC[:, -b:])
