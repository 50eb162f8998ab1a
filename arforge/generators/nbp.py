"""The ``nbp`` family: next-block prediction (NBP) on the raster generator's backbone.

The raster generator (:class:`~arforge.generators.raster.RasterGenerator`: class prefix, 2D RoPE,
position-indexed KV cache, categorical head) driven by a :class:`~arforge.generators.orders.NextBlock`
order: a block of ``b`` tokens per forward pass, bidirectional inside a block, causal across blocks,
targets shifted by one block. The prefix is the class token followed by ``b - 1`` learned start
tokens, so the first block is predicted in the prefill pass like every later one (NBP's block of BOS
tokens): ``N / b`` passes per image. With ``block_size: [1, 1]`` it is the raster generator exactly.
``hybrid_start: true`` generates block 0 token by token and lets the start tokens predict block 1
together with block 0's last token (NBP's hybrid variant; ``b + N / b - 1`` passes).
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
    #: generate the first block token by token (NBP's hybrid start); see :class:`NextBlock`
    hybrid_start: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_class_condition("nbp")
        self.require_own_order("nbp")
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

    def __init__(self, config: NBPConfig):
        super().__init__(config)
        b = self.order.block_size
        self.start_tokens = nn.Parameter(torch.randn(b - 1, config.backbone.dim) * config.backbone.initializer_range)
        self._first_block_last = int(self.order.block_members()[0][-1])  # hybrid start's transition token

    def build_order(self, config: NBPConfig) -> Order:
        return NextBlock(config.grid_size, config.block_size, hybrid_start=config.hybrid_start)

    @property
    def num_prefix(self) -> int:
        return self.config.cls_token_num + math.prod(self.config.block_size) - 1

    def prefix_embeddings(self, cond: torch.Tensor) -> torch.Tensor:
        cls_B1C = self.cls_embedding(cond)[:, :1]
        start = self.start_tokens[None].expand(cls_B1C.shape[0], -1, -1).to(cls_B1C.dtype)
        return torch.cat([cls_B1C, start], dim=1)

    def prefill(self, cond: torch.Tensor, cache: KVCache, cond_mask_BP: torch.Tensor | None = None) -> torch.Tensor:
        """Encode the class token and start tokens (one bidirectional group) into ``cache``; return
        logits ``(B, b, V)`` of block 0. With a hybrid start only the class token is encoded (the
        start tokens come with block 0's last token) and the logits ``(B, 1, V)`` are of token 0."""
        if cond_mask_BP is not None:
            raise ValueError("nbp is class-conditional: no condition mask")
        b = self.order.block_size
        x_BPC = self.prefix_embeddings(cond)
        P = self.config.cls_token_num if self.order.hybrid_start else self.num_prefix
        x_BPC = x_BPC[:, :P]
        B = x_BPC.shape[0]
        pos_BP = torch.arange(P, device=x_BPC.device)[None].expand(B, P)
        cache.mark_valid(pos_BP)
        mask = torch.zeros(B, 1, P, cache.max_len, dtype=torch.bool, device=x_BPC.device)
        mask[..., :P] = group_causal_mask(prefix_groups(P, 1 if self.order.hybrid_start else b)).to(x_BPC.device)
        h_BPC = self.run_layers(self.tok_dropout(x_BPC), self.rope_slots[:P], mask, cache, pos_BP)
        return self.head_logits(h_BPC[:, -1:] if self.order.hybrid_start else h_BPC[:, -b:])

    def decode(self, tokens_BT: torch.Tensor, idx_BT: torch.Tensor, cache: KVCache, causal: bool | None = None,
               visible_BTS: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`RasterGenerator.decode`; with a hybrid start, the pass that feeds block 0's last
        token alone also feeds the ``b - 1`` start tokens (their outputs are rows ``1..b-1``, which
        predict block 1 with row 0)."""
        b = self.order.block_size
        if not (self.order.hybrid_start and b > 1 and idx_BT.shape[1] == 1 and bool((idx_BT == self._first_block_last).all())):
            return super().decode(tokens_BT, idx_BT, cache, causal, visible_BTS)
        if visible_BTS is not None:
            raise ValueError("visible_BTS is not supported on the hybrid-start transition pass")
        B = tokens_BT.shape[0]
        start_B1C = self.start_tokens[None].expand(B, -1, -1).to(self.tok_embeddings.weight.dtype)
        x_BTC = self.tok_dropout(torch.cat([self.tok_embeddings(tokens_BT), start_B1C], dim=1))
        start_pos = torch.arange(self.num_prefix - (b - 1), self.num_prefix, device=idx_BT.device)
        pos_BT = torch.cat([idx_BT + self.num_prefix, start_pos[None].expand(B, -1)], dim=1)
        return self.decode_embeddings(x_BTC, pos_BT, cache, causal)
