"""Load FoundationVision VAR checkpoints: the multi-scale VQVAE (``vae_ch160v4096z32.pth``) into
:class:`~arforge.tokenizers.MultiScaleVQTokenizer` and the transformers (``var_d16.pth`` ...
``var_d36.pth``) into :class:`~arforge.generators.VARGenerator`, strictly.

Every VAR key has an explicit rule:

* VQVAE: the LDM encoder/decoder through :func:`~arforge.interop.ldm_autoencoder.ldm_vae_to_diffusers`
  (fused ``qkv`` split); ``quant_conv``/``post_quant_conv``/``quantize.embedding`` keep their names;
  ``quantize.quant_resi.{qresi | qresi_ls.K | K}`` (shared / partially shared / per-scale ``phi``) ->
  ``quantize.phis.K``; ``quantize.ema_vocab_hit_SV`` is VAR's training usage statistic (a buffer
  whose first dimension VAR itself lets differ) and is not kept.
* Transformer: ``blocks.N.attn.mat_qkv`` -> ``layers.N.attention.wqkv`` with the bias assembled from
  ``q_bias``, ``zero_k_bias`` (VAR's all-zero key-bias buffer, checked to be zero) and ``v_bias``;
  ``attn.proj`` -> ``attention.wo``; ``attn.scale_mul_1H11`` -> ``attention.scale_mul_1H11``;
  ``ffn.fc1``/``fc2`` -> ``feed_forward.w1``/``w2``; ``ada_lin``/``ada_gss`` keep their names under
  ``layers.N``; the buffers ``lvl_1L`` and ``attn_bias_for_masking`` are checked against the ones
  arforge derives from ``patch_nums`` (a mismatch means wrong ``patch_nums``); every other key
  (``class_emb``, ``pos_start``, ``pos_1LC``, ``lvl_embed``, ``word_embed``, ``shared_ada_lin``,
  ``head_nm``, ``head``) keeps its name.

``patch_nums`` cannot be read off the tokenizer's weights; it defaults to VAR's 256 px pyramid (the
transformer loader picks the 256 or 512 px pyramid by the length of ``pos_1LC``).
VAR's class-label dropout is a training-time setting here and never applies in eval.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from arforge.generators.var import VAR_PATCH_NUMS_256, VAR_PATCH_NUMS_512, VARConfig, VARGenerator, var_backbone
from arforge.interop.checkpoint_files import read_state_dict
from arforge.interop.ldm_autoencoder import ldm_architecture, ldm_vae_to_diffusers
from arforge.pretrained import CheckpointError, load_state_dict_strict
from arforge.tokenizers.multiscale import MultiScaleVQConfig, MultiScaleVQTokenizer

log = logging.getLogger(__name__)

_BLOCK = {"attn.mat_qkv.weight": "attention.wqkv.weight", "attn.proj.weight": "attention.wo.weight",
          "attn.proj.bias": "attention.wo.bias", "attn.scale_mul_1H11": "attention.scale_mul_1H11",
          "ffn.fc1.weight": "feed_forward.w1.weight", "ffn.fc1.bias": "feed_forward.w1.bias",
          "ffn.fc2.weight": "feed_forward.w2.weight", "ffn.fc2.bias": "feed_forward.w2.bias",
          "ada_lin.1.weight": "ada_lin.1.weight", "ada_lin.1.bias": "ada_lin.1.bias", "ada_gss": "ada_gss"}
_KEPT = ("class_emb.", "pos_start", "pos_1LC", "lvl_embed.", "word_embed.", "shared_ada_lin.", "head_nm.", "head.")
_CHECKED_BUFFERS = ("lvl_1L", "attn_bias_for_masking")


# ---------------------------------------------------------------------------------------- tokenizer
def _phi_layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, dict[str, str]]:
    """``(phi_count, {VAR key: arforge key})`` for the ``quant_resi`` convs."""
    names: dict[str, str] = {}
    layout = None
    for key in state_dict:
        for pattern, kind in ((r"quantize\.quant_resi\.qresi\.(weight|bias)", "shared"),
                              (r"quantize\.quant_resi\.qresi_ls\.(\d+)\.(weight|bias)", "partial"),
                              (r"quantize\.quant_resi\.(\d+)\.(weight|bias)", "per_scale")):
            m = re.fullmatch(pattern, key)
            if m:
                layout = layout or kind
                if layout != kind:
                    raise CheckpointError(f"mixed quant_resi layouts in the VAR VQVAE ({layout} and {kind})")
                index, kind_name = ("0", m.group(1)) if kind == "shared" else m.groups()
                names[key] = f"quantize.phis.{index}.{kind_name}"
    count = len({v.rsplit(".", 1)[0] for v in names.values()})
    phi_count = {"shared": 1, "partial": count, "per_scale": 0, None: 1}[layout]
    return phi_count, names


def var_vqvae_config(state_dict: Mapping[str, torch.Tensor], patch_nums=None, **overrides: Any) -> MultiScaleVQConfig:
    """Read a :class:`MultiScaleVQConfig` off VAR VQVAE weights (``patch_nums``: default VAR's 256 px pyramid)."""
    if "quantize.embedding.weight" not in state_dict:
        raise CheckpointError("not a VAR VQVAE checkpoint: 'quantize.embedding.weight' is missing")
    arch = ldm_architecture(state_dict)
    arch.pop("latent_channels")
    phi_count, _ = _phi_layout(state_dict)
    V, C = state_dict["quantize.embedding.weight"].shape
    patch_nums = list(patch_nums or VAR_PATCH_NUMS_256)
    if phi_count == 0 and len({k for k in state_dict if re.fullmatch(r"quantize\.quant_resi\.\d+\.weight", k)}) != len(patch_nums):
        raise CheckpointError(f"this VQVAE has one phi conv per scale, but not {len(patch_nums)} of them: check patch_nums")
    config = dict(arch, patch_nums=patch_nums, codebook_size=int(V), latent_channels=int(C),
                  quant_conv_kernel=int(state_dict["quant_conv.weight"].shape[-1]), phi_count=phi_count)
    config.update(overrides)
    return MultiScaleVQConfig(**config)


def convert_var_vqvae(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """VAR VQVAE weights -> :class:`MultiScaleVQTokenizer` names (see the module docstring)."""
    _, phi_names = _phi_layout(state_dict)
    conv, out = {}, {}
    for key, value in state_dict.items():
        if key in phi_names:
            out[phi_names[key]] = value
        elif key == "quantize.embedding.weight":
            out[key] = value
        elif key == "quantize.ema_vocab_hit_SV":
            continue
        elif key.startswith("quantize."):
            raise CheckpointError(f"VAR VQVAE key '{key}' has no arforge counterpart")
        else:
            conv[key] = value
    out.update(ldm_vae_to_diffusers(conv))
    return out


def load_var_vqvae(path: str | Path, *, patch_nums=None, key: str | None = None, **overrides: Any) -> MultiScaleVQTokenizer:
    """Load ``vae_ch160v4096z32.pth`` (or any VAR ``VQVAE`` state dict) strictly; eval mode.

    ``patch_nums``: the token pyramid (default VAR's 256 px one); ``overrides``: config fields shapes
    cannot tell (``norm_num_groups``, ``phi_ratio``). Raises :class:`CheckpointError` on any mismatch.
    """
    state_dict = read_state_dict(path, key=key)
    config = var_vqvae_config(state_dict, patch_nums, **overrides)
    ema = state_dict.get("quantize.ema_vocab_hit_SV")
    if ema is not None and ema.shape[0] != len(config.patch_nums):
        log.info("VAR VQVAE %s was trained with %d scales; using %d (%s)", path, ema.shape[0], len(config.patch_nums),
                 config.patch_nums)
    model = MultiScaleVQTokenizer(config)
    load_state_dict_strict(model, convert_var_vqvae(state_dict), str(path))
    log.info("loaded VAR VQVAE %s: %d codes x %d, widths %s, patch_nums %s", path, config.codebook_size,
             config.latent_channels, config.block_out_channels, config.patch_nums)
    return model.eval()


# -------------------------------------------------------------------------------------- transformer
def var_config(state_dict: Mapping[str, torch.Tensor], patch_nums=None, **overrides: Any) -> VARConfig:
    """Read a :class:`VARConfig` off VAR transformer weights (depth, width, heads, vocabulary,
    classes, shared adaLN); ``patch_nums`` must match ``pos_1LC`` (default: VAR's 256 or 512 px
    pyramid, whichever has ``pos_1LC``'s length)."""
    for k in ("word_embed.weight", "class_emb.weight", "pos_1LC", "head.weight"):
        if k not in state_dict:
            raise CheckpointError(f"not a VAR transformer checkpoint: '{k}' is missing")
    if patch_nums is None:  # VAR's released pyramids are told apart by their length
        by_length = {sum(p * p for p in pn): pn for pn in (VAR_PATCH_NUMS_256, VAR_PATCH_NUMS_512)}
        patch_nums = by_length.get(int(state_dict["pos_1LC"].shape[1]), VAR_PATCH_NUMS_256)
    patch_nums = list(patch_nums)
    L = sum(p * p for p in patch_nums)
    if state_dict["pos_1LC"].shape[1] != L:
        raise CheckpointError(f"pos_1LC has {state_dict['pos_1LC'].shape[1]} positions but patch_nums {patch_nums} give {L}: "
                              "pass the patch_nums the model was trained with")
    C, Cvae = state_dict["word_embed.weight"].shape
    depth = len({int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))})
    heads = int(state_dict["blocks.0.attn.scale_mul_1H11"].shape[1])
    backbone = var_backbone(depth, shared_adaln="shared_ada_lin.1.weight" in state_dict)
    backbone.dim, backbone.n_head = int(C), heads
    backbone.mlp_ratio = state_dict["blocks.0.ffn.fc1.weight"].shape[0] / C
    config = dict(vocab_size=int(state_dict["head.weight"].shape[0]), latent_channels=int(Cvae), patch_nums=patch_nums,
                  num_classes=int(state_dict["class_emb.weight"].shape[0]) - 1, backbone=backbone)
    config.update(overrides)
    return VARConfig(**config)


def convert_var_state_dict(state_dict: Mapping[str, torch.Tensor], model: VARGenerator) -> dict[str, torch.Tensor]:
    """VAR transformer weights -> :class:`VARGenerator` names; checks the derived buffers."""
    out, unmapped = {}, []
    biases: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
        if m and m.group(2) in _BLOCK:
            out[f"layers.{m.group(1)}.{_BLOCK[m.group(2)]}"] = value
        elif m and m.group(2) in ("attn.q_bias", "attn.zero_k_bias", "attn.v_bias"):
            biases.setdefault(int(m.group(1)), {})[m.group(2).split(".")[1]] = value
        elif key in _CHECKED_BUFFERS:
            continue
        elif key.startswith(_KEPT):
            out[key] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise CheckpointError(f"{len(unmapped)} VAR key(s) have no arforge counterpart: {', '.join(sorted(unmapped)[:12])}")
    for i, parts in sorted(biases.items()):
        if set(parts) != {"q_bias", "zero_k_bias", "v_bias"}:
            raise CheckpointError(f"block {i}: attention biases incomplete ({sorted(parts)})")
        if bool(parts["zero_k_bias"].abs().max() > 0):
            raise CheckpointError(f"block {i}: zero_k_bias is not zero; this is not a VAR checkpoint arforge understands")
        out[f"layers.{i}.attention.wqkv.bias"] = torch.cat([parts["q_bias"], parts["zero_k_bias"], parts["v_bias"]])
    if "lvl_1L" in state_dict and not torch.equal(state_dict["lvl_1L"].long().cpu(), model.lvl_1L.cpu()):
        raise CheckpointError("the checkpoint's lvl_1L (scale of every position) differs from patch_nums "
                              f"{list(model.order.patch_nums)}: pass the patch_nums it was trained with")
    if "attn_bias_for_masking" in state_dict:
        allowed = state_dict["attn_bias_for_masking"].reshape(model.num_tokens, model.num_tokens) == 0
        if not torch.equal(allowed.cpu(), model.mask_LL.cpu()):
            raise CheckpointError("the checkpoint's attn_bias_for_masking is not the block-causal mask of patch_nums "
                                  f"{list(model.order.patch_nums)}")
    return out


def load_var(path: str | Path, *, patch_nums=None, key: str | None = None, **overrides: Any) -> VARGenerator:
    """Load a VAR transformer (``var_d16.pth`` ... ``var_d36.pth``: raw state dicts) strictly; eval mode. ``overrides``: :class:`VARConfig` fields (e.g. ``class_dropout_prob``).
    Raises :class:`CheckpointError` on any mismatch."""
    state_dict = read_state_dict(path, key=key)
    config = var_config(state_dict, patch_nums, **overrides)
    model = VARGenerator(config)
    load_state_dict_strict(model, convert_var_state_dict(state_dict, model), str(path))
    log.info("loaded VAR %s: depth %d, width %d, %d classes, %d tokens, %.1fM parameters", path, config.backbone.n_layer,
             config.backbone.dim, config.num_classes, model.num_tokens,
             sum(p.numel() for p in model.parameters()) / 1e6)
    return model.eval()


__all__ = ["convert_var_state_dict", "convert_var_vqvae", "load_var", "load_var_vqvae", "var_config", "var_vqvae_config"]
