"""Load MAR's released generators (``checkpoint-last.pth`` of MAR-B/L/H) into :class:`~arforge.generators.mar.MARGenerator`.

MAR stores ``{"model", "model_ema", "optimizer", ...}``; the EMA weights (``model_ema``) are the ones
its paper evaluates and are used by default. Names map explicitly: timm ``Block`` keys
(``encoder_blocks.N.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2``, ``encoder_norm``) go
to the shared backbone's (``encoder.layers.N.attention_norm / attention.wqkv / attention.wo /
ffn_norm / feed_forward.w1 / feed_forward.w2``, ``encoder.norm``); every other key keeps its name.
Sizes are read off the shapes; the head count is not visible in the weights and comes from MAR's
presets by width (768 -> 12, 1024 -> 16, 1280 -> 16) unless given.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from arforge.generators.presets import presets_of
from arforge.generators.mar import MARConfig, MARGenerator
from arforge.interop.checkpoint_files import read_state_dict
from arforge.pretrained import CheckpointError, load_state_dict_strict

log = logging.getLogger(__name__)

#: attention heads of MAR's released models by width (presets ``mar_b``, ``mar_l``, ``mar_h``)
MAR_HEADS_BY_WIDTH = {p.config["encoder_embed_dim"]: p.config["encoder_num_heads"] for p in presets_of("mar").values()}

_BLOCK = {"norm1": "attention_norm", "attn.qkv": "attention.wqkv", "attn.proj": "attention.wo",
          "norm2": "ffn_norm", "mlp.fc1": "feed_forward.w1", "mlp.fc2": "feed_forward.w2"}
_KEPT = ("fake_latent", "class_emb.", "z_proj.", "z_proj_ln.", "encoder_pos_embed_learned", "decoder_embed.",
         "mask_token", "decoder_pos_embed_learned", "diffusion_pos_embed_learned", "diffloss.net.")


def mar_key(key: str) -> str | None:
    """The arforge name of one MAR key (``None`` if no rule applies)."""
    m = re.fullmatch(r"(encoder|decoder)_blocks\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)", key)
    if m:
        side, i, part, kind = m.groups()
        return f"{side}.layers.{i}.{_BLOCK[part]}.{kind}"
    m = re.fullmatch(r"(encoder|decoder)_norm\.(weight|bias)", key)
    if m:
        return f"{m.group(1)}.norm.{m.group(2)}"
    if key.startswith(_KEPT):
        return key
    return None


def convert_mar_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename MAR weights to :class:`MARGenerator` names; raises :class:`CheckpointError` listing unmapped keys."""
    out, unmapped = {}, []
    for key, value in state_dict.items():
        new = mar_key(key)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    if unmapped:
        raise CheckpointError(f"{len(unmapped)} MAR key(s) have no arforge counterpart: {', '.join(sorted(unmapped)[:12])}")
    return out


def _heads(width: int, given: int | None, which: str) -> int:
    if given is not None:
        return given
    if width not in MAR_HEADS_BY_WIDTH:
        raise CheckpointError(f"cannot tell the {which}'s head count from width {width} (MAR presets: "
                              f"{MAR_HEADS_BY_WIDTH}); pass {which}_heads=<n>")
    return MAR_HEADS_BY_WIDTH[width]


def mar_config_from_state_dict(state_dict: Mapping[str, torch.Tensor], *, encoder_heads: int | None = None,
                               decoder_heads: int | None = None, patch_size: int = 1, **overrides: Any) -> MARConfig:
    """Read a :class:`MARConfig` off MAR weights. ``overrides``: other :class:`MARConfig` fields."""
    for key in ("z_proj.weight", "encoder_pos_embed_learned", "diffusion_pos_embed_learned", "class_emb.weight"):
        if key not in state_dict:
            raise CheckpointError(f"not a MAR checkpoint: '{key}' is missing (found e.g. {', '.join(list(state_dict)[:5])})")
    enc, token_dim = state_dict["z_proj.weight"].shape
    dec = state_dict["decoder_embed.weight"].shape[0]
    num_tokens = state_dict["diffusion_pos_embed_learned"].shape[1]
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise CheckpointError(f"MAR checkpoint has {num_tokens} tokens, not a square grid; pass grid_size=(h, w)")

    def depth(prefix: str) -> int:
        return len({int(m.group(1)) for k in state_dict if (m := re.match(rf"{prefix}\.(\d+)\.", k))})

    config: dict[str, Any] = dict(
        latent_channels=token_dim // patch_size**2,
        patch_size=patch_size,
        grid_size=(side, side),
        num_classes=state_dict["class_emb.weight"].shape[0],
        buffer_size=state_dict["encoder_pos_embed_learned"].shape[1] - num_tokens,
        encoder_embed_dim=enc,
        encoder_depth=depth("encoder_blocks"),
        encoder_num_heads=_heads(enc, encoder_heads, "encoder"),
        decoder_embed_dim=dec,
        decoder_depth=depth("decoder_blocks"),
        decoder_num_heads=_heads(dec, decoder_heads, "decoder"),
        diffloss_w=state_dict["diffloss.net.input_proj.weight"].shape[0],
        diffloss_d=depth("diffloss.net.res_blocks"),
        learn_sigma=state_dict["diffloss.net.final_layer.linear.weight"].shape[0] == 2 * token_dim,
    )
    config.update(overrides)
    return MARConfig(**config)


def load_mar(path: str | Path, *, key: str | None = None, **config_overrides: Any) -> MARGenerator:
    """Load a MAR checkpoint strictly (``model_ema`` by default; ``key="model"`` for the raw weights).

    ``config_overrides``: ``encoder_heads`` / ``decoder_heads`` / ``patch_size`` or :class:`MARConfig`
    fields. Returns the generator in eval mode (no label dropout). Raises :class:`CheckpointError`
    on any mismatch, listing the keys.
    """
    state_dict = read_state_dict(path, key=key, prefer=("model_ema",))
    config = mar_config_from_state_dict(state_dict, **config_overrides)
    model = MARGenerator(config)
    load_state_dict_strict(model, convert_mar_state_dict(state_dict), str(path))
    log.info("loaded MAR %s: encoder %dx%d, decoder %dx%d, head %dx%d, grid %s", path, config.encoder.n_layer,
             config.encoder.dim, config.decoder.n_layer, config.decoder.dim, config.head.depth, config.head.width,
             config.grid_size)
    return model.eval()
