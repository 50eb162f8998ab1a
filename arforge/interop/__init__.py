"""Loaders for public checkpoints (LlamaGen, VAR, MAR) into arforge modules, strictly.

Each loader lives in its own module and is re-exported here, one import line each.
"""

from arforge.interop.checkpoint_files import read_state_dict
from arforge.interop.llamagen_gpt import load_gpt
from arforge.interop.llamagen_vq import load_vq
from arforge.interop.mar import load_mar
from arforge.interop.mar_vae import load_kl
from arforge.interop.var import load_var, load_var_vqvae

__all__ = ["read_state_dict", "load_gpt", "load_vq", "load_mar", "load_kl", "load_var", "load_var_vqvae"]
