"""Load LlamaGen GPT checkpoints (``c2i_B_256.pt`` ... ``c2i_3B_384.pt``, ``t2i_XL_*.pt``) strictly.

The architecture is read off the weights (width, depth, vocabulary, classes or caption width and
length, SwiGLU width); what the weights cannot tell — the head count and the token grid — comes from
LlamaGen's named presets (matched by width and depth), the file name (``*_256.pt`` / ``*_384.pt``
at downsample 16), or explicit arguments. Every key must map: a mismatch raises
:class:`~arforge.pretrained.CheckpointError` listing missing and unexpected keys.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping

import torch

from arforge.generators.backbone import BackboneConfig, find_multiple
from arforge.generators.presets import presets_of
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.interop.checkpoint_files import read_state_dict
from arforge.pretrained import CheckpointError, load_state_dict_strict

log = logging.getLogger(__name__)

#: LlamaGen presets (:mod:`arforge.generators.presets`, ``gpt_*``): (dim, n_layer) -> (name, n_head)
GPT_PRESETS: dict[tuple[int, int], tuple[str, int]] = {
    (p.config["backbone"]["dim"], p.config["backbone"]["n_layer"]): (name, p.config["backbone"]["n_head"])
    for name, p in presets_of("raster").items()
}

#: keys some LlamaGen checkpoints carry that are derived values, not weights
_DERIVED_KEYS = ("freqs_cis",)


def gpt_config_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    grid_size: tuple[int, int] | None,
    n_head: int | None = None,
    class_dropout_prob: float = 0.1,
    multiple_of: int = 256,
    rope_base: float = 10000.0,
    norm_eps: float = 1e-5,
) -> RasterConfig:
    """Infer a :class:`RasterConfig` from LlamaGen GPT weights (see module docstring)."""
    if "tok_embeddings.weight" not in state_dict:
        raise CheckpointError(
            "not a LlamaGen GPT checkpoint: 'tok_embeddings.weight' is missing "
            f"(found e.g. {', '.join(list(state_dict)[:5])})"
        )
    vocab, dim = state_dict["tok_embeddings.weight"].shape
    n_layer = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k)))
    if n_head is None:
        if (dim, n_layer) not in GPT_PRESETS:
            raise CheckpointError(
                f"cannot tell the head count of a GPT with dim={dim}, n_layer={n_layer} (not a LlamaGen preset): pass n_head="
            )
        name, n_head = GPT_PRESETS[(dim, n_layer)]
        log.info("LlamaGen checkpoint matches preset %s (n_head=%d)", name, n_head)
    hidden = state_dict["layers.0.feed_forward.w1.weight"].shape[0]
    ffn_mult = None
    if find_multiple(int(8 * dim / 3), multiple_of) != hidden:
        ffn_mult = hidden / int(8 * dim / 3)
        if find_multiple(int(ffn_mult * int(8 * dim / 3)), multiple_of) != hidden:
            raise CheckpointError(f"SwiGLU width {hidden} does not follow LlamaGen's rule for dim={dim}")
    if grid_size is None:
        raise CheckpointError("the token grid is not stored in LlamaGen checkpoints: pass grid_size=(h, w) (e.g. (16, 16) for 256px at downsample 16)")
    backbone = BackboneConfig(
        dim=dim, n_layer=n_layer, n_head=n_head, multiple_of=multiple_of, ffn_dim_multiplier=ffn_mult,
        rope_base=rope_base, norm_eps=norm_eps,
    )
    if "cls_embedding.embedding_table.weight" in state_dict:
        rows = state_dict["cls_embedding.embedding_table.weight"].shape[0]
        num_classes = rows - 1 if class_dropout_prob > 0 else rows
        return RasterConfig(
            vocab_size=vocab, grid_size=tuple(grid_size), condition="class", num_classes=num_classes,
            class_dropout_prob=class_dropout_prob, cls_token_num=1, backbone=backbone,
        )
    if "cls_embedding.cap_proj.fc1.weight" in state_dict:
        num_tokens, caption_dim = state_dict["cls_embedding.uncond_embedding"].shape
        return RasterConfig(
            vocab_size=vocab, grid_size=tuple(grid_size), condition="caption", caption_dim=caption_dim,
            class_dropout_prob=class_dropout_prob, cls_token_num=num_tokens, backbone=backbone,
        )
    raise CheckpointError("LlamaGen GPT checkpoint has neither a class table nor a caption projection")


def grid_from_filename(path: str | Path, downsample: int = 16) -> tuple[int, int] | None:
    """``c2i_L_384.pt`` -> ``(24, 24)`` at downsample 16; ``None`` if the name carries no size."""
    match = re.search(r"_(\d{2,4})(?:\.\w+)?$", Path(path).stem + Path(path).suffix)
    if not match:
        return None
    side = int(match.group(1)) // downsample
    return (side, side)


def load_gpt(
    path: str | Path,
    *,
    grid_size: tuple[int, int] | None = None,
    n_head: int | None = None,
    downsample: int = 16,
    key: str | None = None,
    prefix: str = "",
    class_dropout_prob: float = 0.1,
) -> RasterGenerator:
    """Build a :class:`RasterGenerator` from a LlamaGen GPT checkpoint and load it strictly.

    Args:
        path: ``.pt``/``.pth`` (DDP dict with ``model``/``ema``/``module``/``state_dict``, or an FSDP
            consolidated state dict) or ``.safetensors``.
        grid_size: token grid; default from the file name (``*_256`` -> 16x16 at ``downsample``).
        n_head: head count; default from LlamaGen's presets.
        key: which entry of a checkpoint dict holds the weights (default: automatic).
        prefix: key prefix to strip (e.g. ``"model."`` for arforge's fixtures).
        class_dropout_prob: LlamaGen's value (0.1) gives the null class row for CFG.
    Returns:
        The generator in eval mode.
    """
    state_dict = read_state_dict(path, key=key)
    if prefix:
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    state_dict = {k: v for k, v in state_dict.items() if k not in _DERIVED_KEYS}
    grid = grid_size or grid_from_filename(path, downsample)
    config = gpt_config_from_state_dict(state_dict, grid_size=grid, n_head=n_head, class_dropout_prob=class_dropout_prob)
    model = RasterGenerator(config)
    load_state_dict_strict(model, state_dict, str(path))
    return model.eval()
