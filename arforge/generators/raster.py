"""The ``raster`` family: Llama-style decoder + raster order + categorical head + class/text prefix.

Parameter names are LlamaGen's ``Transformer`` names (``cls_embedding``, ``tok_embeddings``,
``layers``, ``norm``, ``output``), so LlamaGen c2i/t2i GPT checkpoints load strictly (see
:mod:`arforge.interop.llamagen_gpt`). Condition tokens get an all-zero rotary table, image token
``i`` the 2D rotary angle of its grid cell, exactly as LlamaGen.

Decoding interface used by every sampler (:class:`arforge.generators.protocols.TokenGenerator`):
``new_cache`` -> ``prefill(cond)`` -> repeated ``decode(tokens_BT, idx_BT)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from arforge.config import ComponentSpec, ConfigError
from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.conditioning import CaptionEmbedder, ClassEmbedder
from arforge.generators.kv_cache import KVCache
from arforge.generators.presets import PresetMixin
from arforge.generators.heads.categorical import CategoricalHead
from arforge.generators.heads.categorical import TOKEN_HEADS
from arforge.generators.orders import ORDERS, GroupedOrder, Order, Raster, TrainingArrangement
from arforge.generators.rope import rope_grid, zero_rope
from arforge.pretrained import PretrainedMixin, register_model


@dataclass
class RasterConfig:
    """Configuration of a :class:`RasterGenerator`.

    Attributes:
        vocab_size: codebook size of the tokenizer.
        grid_size: token grid ``(h, w)``, or ``(t, h, w)`` for videos (3D RoPE); LlamaGen's
            ``block_size`` is ``h * w``.
        condition: ``"class"`` (label prefix of 1 token) or ``"caption"`` (text features prefix).
        num_classes: number of classes (a null class is added when ``class_dropout_prob > 0``).
        class_dropout_prob: probability of dropping the condition in training (enables CFG).
        caption_dim: width of the text-encoder features (``condition="caption"``).
        cls_token_num: prefix length P (1 for classes; text length for captions).
        token_dropout_p: dropout on the input embeddings.
        backbone: decoder shape (:class:`BackboneConfig`).
        order: the generation order by name (``{name, options}`` from ``ORDERS``; e.g. ``zipar``
            or a user's registered order); ``None`` = the family's own (raster for ``raster``).
            The raster family runs any order that feeds one token group per pass through the
            standard prefix and predicts with one head.
        head: the output head by name (``{name, options}`` from ``TOKEN_HEADS``, built as
            ``factory(dim, vocab_size, **options)``); ``None`` = the linear categorical head.
    """

    vocab_size: int = 1024
    grid_size: tuple[int, ...] = (16, 16)
    condition: Literal["class", "caption"] = "class"
    num_classes: int = 1000
    class_dropout_prob: float = 0.1
    caption_dim: int = 2048
    cls_token_num: int = 1
    token_dropout_p: float = 0.0
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    order: Optional[ComponentSpec] = None
    head: Optional[ComponentSpec] = None

    def __post_init__(self) -> None:
        if self.condition == "class" and self.cls_token_num != 1:
            raise ValueError("class conditioning uses exactly one prefix token: set cls_token_num: 1")
        if len(self.grid_size) not in (2, 3) or min(self.grid_size) < 1 or self.vocab_size < 2:
            raise ValueError(f"invalid grid_size={self.grid_size} or vocab_size={self.vocab_size}")

    def require_own_order(self, family: str, head: bool = False) -> None:
        """For families whose order follows from their own fields: refuse ``model.order`` (and
        ``model.head`` when ``head``: families with their own heads)."""
        if self.order is not None:
            raise ConfigError(f"{family} builds its own generation order: remove model.order "
                              f"(or use family: raster, which takes model.order)")
        if head and self.head is not None:
            raise ConfigError(f"{family} builds its own heads: remove model.head")

    def require_class_condition(self, family: str) -> None:
        """For families built on this config that have no caption path: refuse ``condition: caption``."""
        if self.condition != "class":
            raise ConfigError(f"{family} supports class conditioning only (condition: class)")


@register_model
class RasterGenerator(PresetMixin, Backbone, PretrainedMixin):
    """Class- or text-conditional next-token generator over a raster token grid (presets ``gpt_*``)."""

    preset_family = "raster"
    config_class = RasterConfig
    model_kind = "generator"
    model_type = "raster"

    def __init__(self, config: RasterConfig):
        super().__init__(config.backbone)
        self.config = config
        bcfg = config.backbone
        if config.condition == "class":
            self.cls_embedding: nn.Module = ClassEmbedder(config.num_classes, bcfg.dim, config.class_dropout_prob)
        else:
            self.cls_embedding = CaptionEmbedder(config.caption_dim, bcfg.dim, config.class_dropout_prob, config.cls_token_num)
        self.tok_embeddings = self.build_token_embedding(config)
        self.tok_dropout = nn.Dropout(config.token_dropout_p)
        self.output = self.build_output(config)
        self.order = self.build_order(config)
        slots_rope = torch.cat([zero_rope(self.num_prefix, bcfg.head_dim),
                                rope_grid(self.order.grid_coords(), bcfg.head_dim, bcfg.rope_base)])
        self.register_buffer("rope_slots", slots_rope, persistent=False)
        self.init_weights(bcfg.initializer_range)
        if isinstance(self.output, CategoricalHead):
            nn.init.zeros_(self.output.weight)

    def build_token_embedding(self, config: RasterConfig) -> nn.Module:
        """Input embedding of image tokens: a codebook lookup (continuous-token subclasses project)."""
        return nn.Embedding(config.vocab_size, config.backbone.dim)

    def build_output(self, config: RasterConfig) -> nn.Module:
        """The head that reads the trunk (``output``): ``config.head`` if given, else categorical
        logits over the codebook (LlamaGen's ``output``)."""
        if config.head is None:
            return CategoricalHead(config.backbone.dim, config.vocab_size)
        return config.head.build(TOKEN_HEADS, config.backbone.dim, config.vocab_size, key="model.head")

    def build_order(self, config: RasterConfig) -> Order:
        """The generation order: ``config.order`` if given, else raster (subclasses build their own)."""
        if config.order is None:
            return Raster(config.grid_size)
        order = config.order.build(ORDERS, tuple(config.grid_size), key="model.order")
        if getattr(order, "num_heads", 1) != 1 or order.name == "next_block":
            family = {"neighbor": "nar", "next_block": "nbp"}.get(order.name, "a family built for it")
            raise ConfigError(f"the {order.name} order needs its own heads or start tokens: use family {family}, "
                              "not raster with model.order")
        return order

    @property
    def decode_causal(self) -> bool:
        """Decode passes let each query see only slots at or before its own in raster order (and
        orders derived from it: ZipAR); any other order's queries see every valid slot, which during
        decoding are exactly the tokens generated so far."""
        return isinstance(self.order, Raster) and not isinstance(self.order, GroupedOrder)

    # ------------------------------------------------------------------ properties
    @property
    def num_prefix(self) -> int:
        """Prefix slots P before the image tokens (condition tokens, plus any start tokens)."""
        return self.config.cls_token_num

    @property
    def num_tokens(self) -> int:
        return self.order.num_tokens

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.num_prefix + self.num_tokens

    def null_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """The unconditional counterpart of ``cond`` (null class / null caption) for CFG."""
        return self.cls_embedding.null_condition(cond)

    # ------------------------------------------------------------------ training
    def forward(self, tokens_BN: torch.Tensor, cond: torch.Tensor, cond_mask_BP: torch.Tensor | None = None,
                arrangement: TrainingArrangement | None = None) -> torch.Tensor:
        """Teacher-forced logits ``(B, N, V)`` (float32); ``logits[:, i]`` predicts ``tokens_BN[:, i]``.

        ``cond`` is labels ``(B,)`` or caption features ``(B, P, caption_dim)``; ``cond_mask_BP``
        (captions only) marks valid caption tokens (left padding), as LlamaGen's ``emb_mask``.
        ``arrangement`` (default: this model's order's, :meth:`training_arrangement`) is the
        teacher-forcing layout: which tokens are fed, the attention mask over its ``L`` slots, and
        optional side queries whose outputs replace the predictions of their targets (e.g. the
        exact ZipAR layout of :class:`~arforge.generators.orders.ZipAR`).
        """
        B, N = tokens_BN.shape[:2]
        if N != self.num_tokens:
            raise ValueError(f"expected {self.num_tokens} tokens per image (grid {self.config.grid_size}), got {N}")
        P = self.num_prefix
        arr = arrangement or self.training_arrangement()
        input_idx = arr.input_idx_T.to(tokens_BN.device)
        x_BLC = torch.cat([self.prefix_embeddings(cond), self.tok_embeddings(tokens_BN[:, input_idx])], dim=1)
        x_BLC = self.tok_dropout(x_BLC)
        L, dev = x_BLC.shape[1], x_BLC.device
        rope = self.rope_slots[torch.cat([torch.arange(P, device=input_idx.device), P + input_idx])]
        mask = arr.mask_LL
        if mask is not None and mask.shape != (L, L):
            raise ValueError(f"the arrangement's mask must be ({L}, {L}) for this model, got {tuple(mask.shape)}")
        side = arr.side
        if side is not None:
            if cond_mask_BP is not None or arr.head_slots_NH is not None:
                raise ValueError("side queries support single-head class-conditioned models only")
            E = side.src_E.numel()
            if side.visible_EL.shape != (E, L):
                raise ValueError(f"side.visible_EL must be ({E}, {L}) for this model, got {tuple(side.visible_EL.shape)}")
            x_BLC = torch.cat([x_BLC, self.tok_dropout(self.tok_embeddings(tokens_BN[:, side.src_E.to(dev)]))], dim=1)
            rope = torch.cat([rope, self.rope_slots[P + side.slot_E.to(dev)]])
            full = torch.zeros(L + E, L + E, dtype=torch.bool, device=dev)
            full[:L, :L] = torch.ones(L, L, dtype=torch.bool, device=dev).tril() if mask is None else mask.to(dev)
            full[L:, :L] = side.visible_EL.to(dev)
            full[L:, L:] = torch.eye(E, dtype=torch.bool, device=dev)
            h_BMC = self.run_layers(x_BLC, rope, full)
            return self.read_out(h_BMC[:, :L], arr).index_copy(1, side.target_E.to(dev), self.head_logits(h_BMC[:, L:]))
        if cond_mask_BP is not None:
            mask = self._prefix_padding_mask(cond_mask_BP, L, mask)
        h_BLC = self.run_layers(x_BLC, rope, None if mask is None else mask.to(dev))
        return self.read_out(h_BLC, arr)

    def training_arrangement(self):
        """The order's teacher-forcing layout for this model's prefix (built once, then reused)."""
        if getattr(self, "_arrangement", None) is None:
            self._arrangement = self.order.training_arrangement(self.num_prefix)
        return self._arrangement

    def prefix_embeddings(self, cond: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, P, C)`` of the prefix slots."""
        return self.cls_embedding(cond)[:, :self.config.cls_token_num]

    def head_logits(self, h_BTC: torch.Tensor) -> torch.Tensor:
        """Float32 logits of output features: ``(..., V)`` (multi-head subclasses add a head dim)."""
        return self.output(h_BTC)

    def read_out(self, h_BLC: torch.Tensor, arr) -> torch.Tensor:
        """Teacher-forced logits ``(B, N, V)`` of every image token from the trunk outputs."""
        return self.head_logits(h_BLC[:, arr.target_slot_N.to(h_BLC.device)])

    def select_logits(self, out: torch.Tensor, step) -> torch.Tensor:
        """Logits ``(B, E, V)`` of the tokens a :class:`DecodeStep` emits, from that pass's outputs
        (``prefill``: ``(B, V)`` or ``(B, R, V)`` for the last R prefix slots; ``decode``: ``(B, T, V)``).
        Negative ``source_E`` entries count from the end of the prefill outputs."""
        if out.dim() == 2:
            out = out[:, None]
        rows = step.source_E.to(out.device)
        return out[:, torch.where(rows < 0, rows + out.shape[1], rows)]

    def loss(self, tokens_BN: torch.Tensor, cond: torch.Tensor, cond_mask_BP: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy over all image tokens."""
        logits_BNV = self.forward(tokens_BN, cond, cond_mask_BP)
        return F.cross_entropy(logits_BNV.flatten(0, 1), tokens_BN.flatten())

    @staticmethod
    def _prefix_padding_mask(cond_mask_BP: torch.Tensor, L: int, base_LL: torch.Tensor | None) -> torch.Tensor:
        """Causal mask with padded prefix columns hidden and the diagonal kept (LlamaGen t2i)."""
        B, P = cond_mask_BP.shape
        dev = cond_mask_BP.device
        causal = torch.ones(L, L, dtype=torch.bool, device=dev).tril() if base_LL is None else base_LL.to(dev)
        cols = torch.ones(B, L, dtype=torch.bool, device=dev)
        cols[:, :P] = cond_mask_BP.bool()
        mask = causal[None] & cols[:, None, :]
        mask |= torch.eye(L, dtype=torch.bool, device=dev)[None]
        return mask[:, None]

    # ------------------------------------------------------------------ decoding
    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None, device=None, max_len: int | None = None) -> KVCache:
        """Empty KV cache for ``batch_size`` sequences of ``max_seq_len`` slots."""
        return super().new_cache(batch_size, max_len or self.max_seq_len, dtype=dtype, device=device)

    def prefill(self, cond: torch.Tensor, cache: KVCache, cond_mask_BP: torch.Tensor | None = None) -> torch.Tensor:
        """Encode the condition prefix into ``cache`` (slots ``0..P-1``); return logits ``(B, V)`` for token 0."""
        P = self.num_prefix
        x_BPC = self.prefix_embeddings(cond)
        B = x_BPC.shape[0]
        pos_BP = torch.arange(P, device=x_BPC.device)[None].expand(B, P)
        cache.mark_valid(pos_BP)
        mask = cache.attention_mask(pos_BP)
        if cond_mask_BP is not None:
            keep_BL = torch.ones_like(cache.valid_BL)
            keep_BL[:, :P] = cond_mask_BP.bool()
            mask = (mask & keep_BL[:, None, None, :]) | (cache.slot_pos_L[None, None, None, :] == pos_BP[:, None, :, None])
        h_BPC = self.run_layers(self.tok_dropout(x_BPC), self.rope_slots[:P], mask, cache, pos_BP)
        if cond_mask_BP is not None:  # later queries must not see padded caption slots
            cache.valid_BL[:, :P] &= cond_mask_BP.bool()
        return self.head_logits(h_BPC[:, -1])

    def decode(self, tokens_BT: torch.Tensor, idx_BT: torch.Tensor, cache: KVCache, causal: bool | None = None,
               visible_BTS: torch.Tensor | None = None) -> torch.Tensor:
        """Feed image tokens ``tokens_BT`` at grid indices ``idx_BT`` (raster index, int64 ``(B, T)``).

        Their K/V are written to slots ``P + idx`` and each query attends every valid slot at or
        before its own (``causal``; default :attr:`decode_causal`) — slots not generated yet are
        masked, never read as zeros.
        ``visible_BTS`` (bool, ``(B, T, cache.max_len)``) further restricts what each query may see
        (e.g. other rows' unverified drafts fed in the same pass); it is ANDed with that rule.
        Returns float32 logits ``(B, T, V)``; in raster order, ``logits[:, t]`` predicts grid index
        ``idx_BT[:, t] + 1``.
        """
        if tokens_BT.shape[:2] != idx_BT.shape:
            raise ValueError(f"tokens {tuple(tokens_BT.shape)} and indices {tuple(idx_BT.shape)} must match")
        x_BTC = self.tok_dropout(self.tok_embeddings(tokens_BT))
        return self.decode_embeddings(x_BTC, idx_BT + self.num_prefix, cache, causal, visible_BTS)

    def decode_embeddings(self, x_BTC: torch.Tensor, pos_BT: torch.Tensor, cache: KVCache, causal: bool | None = None,
                          visible_BTS: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`decode` on input embeddings ``x_BTC`` at sequence slots ``pos_BT`` (prefix slots
        included); returns the head's logits of every fed slot."""
        cache.mark_valid(pos_BT)
        mask = cache.attention_mask(pos_BT, causal=self.decode_causal if causal is None else causal)
        if visible_BTS is not None:
            if visible_BTS.shape != (*pos_BT.shape, cache.max_len):
                raise ValueError(f"visible_BTS must have shape {(*pos_BT.shape, cache.max_len)}, got {tuple(visible_BTS.shape)}")
            mask = mask & visible_BTS[:, None]
        h_BTC = self.run_layers(x_BTC, self.rope_slots[pos_BT], mask, cache, pos_BT)
        return self.head_logits(h_BTC)
