"""Load MAR's KL-16 VAE (``kl16.ckpt``, LDM ``AutoencoderKL`` layout) into :class:`~arforge.tokenizers.KLTokenizer`.

MAR's VAE is the latent-diffusion ``AutoencoderKL``; :class:`KLTokenizer` wraps
``diffusers.AutoencoderKL``. :func:`~arforge.interop.ldm_autoencoder.ldm_vae_to_diffusers`
renames every LDM key explicitly. The architecture is read off the shapes, and the converted dict
must fill the model exactly: any LDM key without a rule, or any model key left empty, raises
:class:`~arforge.pretrained.CheckpointError` naming them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from arforge.interop.checkpoint_files import read_state_dict
from arforge.interop.ldm_autoencoder import ldm_architecture, ldm_vae_to_diffusers
from arforge.pretrained import load_state_dict_strict
from arforge.tokenizers.kl import KLConfig, KLTokenizer

log = logging.getLogger(__name__)

#: MAR multiplies VAE latents by this constant (``engine_mar.py``) before the generator sees them
MAR_KL16_SCALING_FACTOR = 0.2325


def kl_config_from_ldm_state_dict(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> KLConfig:
    """Read a :class:`KLConfig` off LDM ``AutoencoderKL`` weights (``overrides`` win; default scale: MAR's 0.2325)."""
    config = dict(ldm_architecture(state_dict), scaling_factor=MAR_KL16_SCALING_FACTOR)
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
