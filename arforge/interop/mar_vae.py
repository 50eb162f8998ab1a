"""Load MAR's KL-16 VAE (``kl16.ckpt``, LDM ``AutoencoderKL`` layout) into :class:`~arforge.tokenizers.KLTokenizer`.

MAR's VAE is the latent-diffusion ``AutoencoderKL``; :class:`KLTokenizer` wraps
``diffusers.AutoencoderKL``. :func:`ldm_vae_to_diffusers` renames every LDM key explicitly
(including the encoder's per-level attention, which diffusers' own single-file converter leaves
unmapped, and ``nin_shortcut`` -> ``conv_shortcut``); 1x1-conv attention projections become
linear weights. The architecture is read off the shapes, and the converted dict must fill the
model exactly: any LDM key without a rule, or any model key left empty, raises
:class:`~arforge.pretrained.CheckpointError` naming them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from arforge.interop.checkpoint_files import read_state_dict
from arforge.pretrained import CheckpointError, load_state_dict_strict
from arforge.tokenizers.kl import KLConfig, KLTokenizer

log = logging.getLogger(__name__)

#: MAR multiplies VAE latents by this constant (``engine_mar.py``) before the generator sees them
MAR_KL16_SCALING_FACTOR = 0.2325

_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_TOP = {"conv_in": "conv_in", "conv_out": "conv_out", "norm_out": "conv_norm_out"}


def _num_levels(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    if not found or found != set(range(len(found))):
        raise CheckpointError(f"not an LDM AutoencoderKL: levels under '{prefix}' are {sorted(found)}, expected 0..L-1")
    return len(found)


def _rename(key: str, num_levels: int) -> str | None:
    """The diffusers name of one LDM key (``None`` if no rule applies)."""
    if key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    m = re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(weight|bias)", key)
    if m:
        return f"{m.group(1)}.{_TOP[m.group(2)]}.{m.group(3)}"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.(block_1|block_2|attn_1)\.(\w+)\.(weight|bias)", key)
    if m:
        side, part, layer, kind = m.groups()
        if part == "attn_1":
            return f"{side}.mid_block.attentions.0.{_ATTN[layer]}.{kind}" if layer in _ATTN else None
        index = 0 if part == "block_1" else 1
        return f"{side}.mid_block.resnets.{index}.{_RESNET[layer]}.{kind}" if layer in _RESNET else None
    m = re.fullmatch(r"encoder\.down\.(\d+)\.(block|attn)\.(\d+)\.(\w+)\.(weight|bias)", key)
    if m:
        level, part, j, layer, kind = m.groups()
        table, group = (_RESNET, "resnets") if part == "block" else (_ATTN, "attentions")
        return f"encoder.down_blocks.{level}.{group}.{j}.{table[layer]}.{kind}" if layer in table else None
    m = re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", key)
    if m:
        return f"encoder.down_blocks.{m.group(1)}.downsamplers.0.conv.{m.group(2)}"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.(block|attn)\.(\d+)\.(\w+)\.(weight|bias)", key)
    if m:  # LDM stores up[i] at resolution level i; diffusers lists up_blocks from the lowest resolution
        level, part, j, layer, kind = m.groups()
        table, group = (_RESNET, "resnets") if part == "block" else (_ATTN, "attentions")
        block = num_levels - 1 - int(level)
        return f"decoder.up_blocks.{block}.{group}.{j}.{table[layer]}.{kind}" if layer in table else None
    m = re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", key)
    if m:
        return f"decoder.up_blocks.{num_levels - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}"
    return None


def ldm_vae_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an LDM ``AutoencoderKL`` state dict to ``diffusers.AutoencoderKL`` names (no ``vae.`` prefix).

    Attention q/k/v/proj_out 1x1 convolutions ``(C, C, 1, 1)`` become linear weights ``(C, C)``.
    Raises :class:`CheckpointError` listing keys no rule maps.
    """
    num_levels = _num_levels(state_dict, r"encoder\.down")
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        new = _rename(key, num_levels)
        if new is None:
            unmapped.append(key)
            continue
        if re.search(r"\.(to_q|to_k|to_v|to_out\.0)\.weight$", new) and value.ndim == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    if unmapped:
        raise CheckpointError(f"{len(unmapped)} LDM VAE key(s) have no diffusers counterpart: {', '.join(sorted(unmapped)[:12])}")
    return out


def kl_config_from_ldm_state_dict(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> KLConfig:
    """Read a :class:`KLConfig` off LDM ``AutoencoderKL`` weights (``overrides`` win; default scale: MAR's 0.2325)."""
    for key in ("encoder.conv_in.weight", "post_quant_conv.weight", "decoder.conv_out.weight"):
        if key not in state_dict:
            raise CheckpointError(f"not an LDM AutoencoderKL checkpoint: '{key}' is missing (found e.g. {', '.join(list(state_dict)[:5])})")
    levels = _num_levels(state_dict, r"encoder\.down")
    widths = [int(state_dict[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) for i in range(levels)]
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))}

    def attn_levels(side: str, part: str) -> list[int]:
        return sorted({int(m.group(1)) for k in state_dict if (m := re.match(rf"{side}\.{part}\.(\d+)\.attn\.", k))})

    config = dict(
        in_channels=int(state_dict["encoder.conv_in.weight"].shape[1]),
        latent_channels=int(state_dict["post_quant_conv.weight"].shape[1]),
        block_out_channels=widths,
        layers_per_block=len(blocks),
        encoder_attn_levels=attn_levels("encoder", "down"),
        decoder_attn_levels=attn_levels("decoder", "up"),
        mid_block_add_attention=any(k.startswith("encoder.mid.attn_1.") for k in state_dict),
        norm_num_groups=min(32, *widths),
        scaling_factor=MAR_KL16_SCALING_FACTOR,
    )
    config.update(overrides)
    return KLConfig(**config)


def load_kl(path: str | Path, *, key: str | None = None, **overrides: Any) -> KLTokenizer:
    """Load an LDM/MAR ``AutoencoderKL`` checkpoint (``kl16.ckpt``; ``.pt``/``.ckpt``/``.safetensors``) strictly.

    ``key``: entry of a wrapped checkpoint (default: automatic, ``model`` first). ``overrides``:
    :class:`KLConfig` fields that shapes cannot tell (``norm_num_groups``, ``scaling_factor``).
    Returns the tokenizer in eval mode. Raises :class:`CheckpointError` on any mismatch.
    """
    state_dict = read_state_dict(path, key=key)
    config = kl_config_from_ldm_state_dict(state_dict, **overrides)
    model = KLTokenizer(config)
    converted = {f"vae.{k}": v for k, v in ldm_vae_to_diffusers(state_dict).items()}
    load_state_dict_strict(model, converted, str(path))
    log.info("loaded LDM/MAR KL VAE %s: widths %s, %d latent channels, scale %g", path, config.block_out_channels,
             config.latent_channels, config.scaling_factor)
    return model.eval()
