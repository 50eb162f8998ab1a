"""Load LlamaGen VQ tokenizer checkpoints (``vq_ds16_c2i.pt``, ``vq_ds8_c2i.pt``, ``vq_ds16_t2i.pt``) strictly.

:class:`~arforge.tokenizers.VQTokenizer` uses LlamaGen's parameter names, so no key conversion is
needed: the architecture is read off the tensor shapes (codebook size and dimension, base width
``ch``, per-level multipliers, resnet blocks per level, ``z_channels``, attention levels, image
channels, whether the ``codebook_used`` buffer is present) and every key must match. What shapes
cannot tell takes LlamaGen's values (GroupNorm 32, l2-normalised codes, beta 0.25) unless given as
an override. A mismatch raises :class:`~arforge.pretrained.CheckpointError` listing the missing
and unexpected keys.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from arforge.config import from_dict, to_dict
from arforge.interop.checkpoint_files import read_state_dict
from arforge.pretrained import CheckpointError, load_state_dict_strict
from arforge.tokenizers.vq import VQConfig, VQTokenizer

log = logging.getLogger(__name__)

#: LlamaGen's named tokenizer layouts (``tokenizer/tokenizer_image/vq_model.py``), for logging
LLAMAGEN_VQ_PRESETS: dict[str, dict[str, Any]] = {
    "VQ-16": {"encoder_ch_mult": [1, 1, 2, 2, 4], "decoder_ch_mult": [1, 1, 2, 2, 4], "ch": 128, "z_channels": 256},
    "VQ-8": {"encoder_ch_mult": [1, 2, 2, 4], "decoder_ch_mult": [1, 2, 2, 4], "ch": 128, "z_channels": 256},
}


def _indices(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state_dict if (m := regex.match(k))})


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(f"not a LlamaGen VQ checkpoint: '{key}' is missing (found e.g. {', '.join(list(state_dict)[:5])})")
    return tuple(state_dict[key].shape)


def vq_config_from_state_dict(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> VQConfig:
    """Infer a :class:`VQConfig` from LlamaGen ``VQModel`` weights; ``overrides`` (VQConfig fields) win.

    Raises :class:`CheckpointError` if the weights do not have LlamaGen's layout and
    :class:`~arforge.config.ConfigError` for an unknown override name.
    """
    codebook_size, embed_dim = _shape(state_dict, "quantize.embedding.weight")
    ch, in_channels = _shape(state_dict, "encoder.conv_in.weight")[:2]
    z_channels = _shape(state_dict, "encoder.conv_out.weight")[0]
    enc_levels = _indices(state_dict, r"encoder\.conv_blocks\.(\d+)\.")
    dec_levels = _indices(state_dict, r"decoder\.conv_blocks\.(\d+)\.")
    if not enc_levels or enc_levels != list(range(len(enc_levels))) or dec_levels != enc_levels:
        raise CheckpointError(
            f"LlamaGen VQ checkpoint has encoder levels {enc_levels} and decoder levels {dec_levels}; expected 0..L-1 for both"
        )
    n_levels = len(enc_levels)
    num_res_blocks = len(_indices(state_dict, r"encoder\.conv_blocks\.0\.res\.(\d+)\."))

    def width(prefix: str) -> int:
        out = _shape(state_dict, f"{prefix}.res.0.conv1.weight")[0]
        if out % ch:
            raise CheckpointError(f"{prefix} has width {out}, not a multiple of the base width ch={ch}")
        return out // ch

    encoder_ch_mult = [width(f"encoder.conv_blocks.{i}") for i in range(n_levels)]
    # decoder conv_blocks[j] holds resolution level n_levels - 1 - j
    decoder_ch_mult = [width(f"decoder.conv_blocks.{n_levels - 1 - level}") for level in range(n_levels)]
    attn_levels = [i for i in range(n_levels) if f"encoder.conv_blocks.{i}.attn.0.q.weight" in state_dict]
    inferred: dict[str, Any] = {
        "codebook_size": codebook_size,
        "codebook_embed_dim": embed_dim,
        "codebook_show_usage": "quantize.codebook_used" in state_dict,
        "encoder_ch_mult": encoder_ch_mult,
        "decoder_ch_mult": decoder_ch_mult,
        "z_channels": z_channels,
        "ch": ch,
        "num_res_blocks": num_res_blocks,
        "attn_levels": None if attn_levels == [n_levels - 1] else attn_levels,
        "in_channels": in_channels,
    }
    for name, preset in LLAMAGEN_VQ_PRESETS.items():
        if all(inferred[k] == v for k, v in preset.items()):
            log.info("LlamaGen VQ checkpoint matches the %s layout (codebook %dx%d)", name, codebook_size, embed_dim)
    inferred.update(overrides)
    return from_dict(VQConfig, inferred, source="load_vq overrides" if overrides else None)


def load_vq(path: str | Path, *, key: str | None = None, prefix: str = "", **config_overrides: Any) -> VQTokenizer:
    """Build a :class:`VQTokenizer` from a LlamaGen VQ checkpoint and load it strictly.

    Args:
        path: ``.pt``/``.pth`` (a dict with ``model``/``ema``/... or a bare state dict) or ``.safetensors``.
        key: entry of a checkpoint dict holding the weights (``None``: automatic, ``model`` first;
            pass ``key="ema"`` for EMA weights).
        prefix: key prefix to strip first (``"model."`` for arforge's interop fixtures); only keys
            with the prefix are kept.
        **config_overrides: :class:`VQConfig` fields the weights cannot tell (e.g. ``norm_groups``,
            ``codebook_l2_norm``, ``commit_loss_beta``) or that should win over the inferred ones.
    Returns:
        The tokenizer in eval mode, on CPU.
    Raises:
        CheckpointError: unreadable file, not a LlamaGen VQ layout, or keys/shapes that do not match
            (the error lists missing keys, unexpected keys and shape mismatches).
    """
    state_dict = read_state_dict(path, key=key)
    if prefix:
        stripped = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not stripped:
            raise CheckpointError(f"no key of {path} starts with prefix '{prefix}' (found e.g. {', '.join(list(state_dict)[:5])})")
        state_dict = stripped
    config = vq_config_from_state_dict(state_dict, **config_overrides)
    log.debug("LlamaGen VQ config from %s: %s", path, to_dict(config))
    model = VQTokenizer(config)
    load_state_dict_strict(model, state_dict, str(path))
    return model.eval()
