"""LDM (taming / latent-diffusion) autoencoder state dicts -> ``diffusers`` ``Encoder``/``Decoder`` names.

MAR's KL-16 VAE and VAR's multi-scale VQVAE both use the LDM convolutional encoder/decoder
(``encoder.down.N.block.N``, ``mid.block_1``, ``decoder.up.N`` ...); arforge builds them from
``diffusers`` blocks. :func:`ldm_vae_to_diffusers` renames every key explicitly (including the
encoder's per-level attention, which diffusers' own single-file converter leaves unmapped, and
``nin_shortcut`` -> ``conv_shortcut``); 1x1-conv attention projections become linear weights and a
fused ``qkv`` projection (VAR) is split into ``to_q``/``to_k``/``to_v``.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from arforge.pretrained import CheckpointError

_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "qkv": "to_qkv", "proj_out": "to_out.0"}
_TOP = {"conv_in": "conv_in", "conv_out": "conv_out", "norm_out": "conv_norm_out"}


def num_levels(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of resolution levels under ``prefix`` (e.g. ``encoder\\.down``); they must be numbered 0..L-1."""
    found = {int(m.group(1)) for k in state_dict if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    if not found or found != set(range(len(found))):
        raise CheckpointError(f"not an LDM autoencoder: levels under '{prefix}' are {sorted(found)}, expected 0..L-1")
    return len(found)


def _rename(key: str, levels: int) -> str | None:
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
        block = levels - 1 - int(level)
        return f"decoder.up_blocks.{block}.{group}.{j}.{table[layer]}.{kind}" if layer in table else None
    m = re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", key)
    if m:
        return f"decoder.up_blocks.{levels - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}"
    return None


def ldm_vae_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an LDM autoencoder state dict to ``diffusers`` names (``encoder.*``, ``decoder.*``,
    ``quant_conv.*``, ``post_quant_conv.*`` pass through; other keys are an error).

    Attention q/k/v/proj_out 1x1 convolutions ``(C, C, 1, 1)`` become linear weights ``(C, C)``;
    a fused ``qkv`` ``(3C, C, 1, 1)`` becomes three.
    Raises :class:`CheckpointError` listing keys no rule maps.
    """
    levels = num_levels(state_dict, r"encoder\.down")
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        new = _rename(key, levels)
        if new is None:
            unmapped.append(key)
            continue
        if re.search(r"\.(to_q|to_k|to_v|to_out\.0|to_qkv)\.weight$", new) and value.ndim == 4:
            value = value[:, :, 0, 0]
        if ".to_qkv." in new:  # fused projection (q; k; v stacked on the output dim)
            for name, part in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0)):
                out[new.replace("to_qkv", name)] = part.contiguous()
            continue
        out[new] = value
    if unmapped:
        raise CheckpointError(f"{len(unmapped)} LDM VAE key(s) have no diffusers counterpart: {', '.join(sorted(unmapped)[:12])}")
    return out




def ldm_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Architecture fields read off LDM encoder/decoder weights: ``in_channels``,
    ``latent_channels`` (the ``post_quant_conv`` width), ``block_out_channels``, ``layers_per_block``,
    ``encoder_attn_levels``, ``decoder_attn_levels``, ``mid_block_add_attention``, ``norm_num_groups``
    (GroupNorm groups cannot be read off shapes: 32, or the smallest width if that is less)."""
    for key in ("encoder.conv_in.weight", "post_quant_conv.weight", "decoder.conv_out.weight"):
        if key not in state_dict:
            raise CheckpointError(f"not an LDM autoencoder checkpoint: '{key}' is missing (found e.g. {', '.join(list(state_dict)[:5])})")
    levels = num_levels(state_dict, r"encoder\.down")
    widths = [int(state_dict[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) for i in range(levels)]
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))}

    def attn_levels(side: str, part: str) -> list[int]:
        return sorted({int(m.group(1)) for k in state_dict if (m := re.match(rf"{side}\.{part}\.(\d+)\.attn\.", k))})

    return dict(
        in_channels=int(state_dict["encoder.conv_in.weight"].shape[1]),
        latent_channels=int(state_dict["post_quant_conv.weight"].shape[1]),
        block_out_channels=widths,
        layers_per_block=len(blocks),
        encoder_attn_levels=attn_levels("encoder", "down"),
        decoder_attn_levels=attn_levels("decoder", "up"),
        mid_block_add_attention=any(k.startswith("encoder.mid.attn_1.") for k in state_dict),
        norm_num_groups=min(32, *widths),
    )
