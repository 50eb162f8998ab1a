"""Read the weights of a foreign checkpoint file into a flat ``{name: tensor}`` dict, safely.

* ``.safetensors``: read with ``safetensors`` (no code execution possible).
* ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``: ``torch.load(weights_only=True)`` (never a full
  unpickle). ``argparse.Namespace`` is allow-listed because LlamaGen's training checkpoints store
  their ``args`` that way. Training checkpoints wrap the weights in a dict; the entry used is chosen
  by ``key`` or, automatically, the first of :data:`WRAPPER_KEYS` present (``model`` first, as the
  LlamaGen scripts do), and it is logged at debug level.

Missing, unreadable or unrecognised files raise :class:`~arforge.pretrained.CheckpointError`.
"""

from __future__ import annotations

import argparse
import logging
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from arforge.pretrained import CheckpointError

log = logging.getLogger(__name__)

#: entries of a checkpoint dict that hold a state dict, in the order automatic selection tries them
WRAPPER_KEYS: tuple[str, ...] = ("model", "module", "state_dict", "ema", "model_ema")
TORCH_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"


def _load_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, which arforge does not unpickle "
            f"(torch.load(weights_only=True) refused: {str(err).splitlines()[0]}); re-save only the state dict, "
            "e.g. torch.save(ckpt['model'], 'weights.pt'), from a trusted environment"
        ) from err
    except Exception as err:  # corrupt zip, truncated file, not a torch file at all
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {type(err).__name__}: {err}") from err


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # SafetensorError, OSError on truncated headers
        raise CheckpointError(f"cannot read {path} as safetensors: {type(err).__name__}: {err}") from err


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any, key: str | None = None, source: str = "checkpoint",
                      prefer: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Pick the state dict out of a loaded checkpoint object.

    ``key`` names the entry to use (``"model"``, ``"ema"``, ...); ``None`` means automatic: ``obj``
    itself if it maps names to tensors only, else the first entry of ``prefer`` + :data:`WRAPPER_KEYS`
    present (MAR's loader prefers ``model_ema``).
    Raises :class:`CheckpointError` (listing the available entries) if nothing fits.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a dict of tensors")
    if key is not None:
        if key not in obj:
            raise CheckpointError(f"{source} has no entry '{key}'; its entries are: {', '.join(map(str, obj.keys()))}")
        chosen, used = obj[key], key
    elif _is_state_dict(obj):
        log.debug("%s: using the top-level dict as the state dict", source)
        return dict(obj)
    else:
        used = next((k for k in (*prefer, *WRAPPER_KEYS) if k in obj), None)
        if used is None:
            raise CheckpointError(
                f"{source} is a dict without a state dict entry ({', '.join(WRAPPER_KEYS)}); its entries are: "
                f"{', '.join(map(str, obj.keys()))}; pass key=<entry> to choose one"
            )
        chosen = obj[used]
    log.debug("%s: using the state dict under key '%s'", source, used)
    if not _is_state_dict(chosen):
        bad = [str(k) for k, v in (chosen.items() if isinstance(chosen, Mapping) else []) if not isinstance(v, torch.Tensor)]
        detail = f"non-tensor entries: {', '.join(bad[:8])}" if bad else f"a {type(chosen).__name__}"
        raise CheckpointError(f"{source}['{used}'] is not a state dict ({detail}); pass key=<entry> naming the weights")
    return dict(chosen)


def read_state_dict(path: str | Path, key: str | None = None, prefer: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Read ``{parameter name: tensor}`` (on CPU) from a ``.pt/.pth/.bin/.ckpt`` or ``.safetensors`` file.

    Args:
        path: the checkpoint file.
        key: for PyTorch files wrapping the weights in a dict, the entry to use; ``None`` picks it
            automatically (see :func:`unwrap_state_dict`; ``prefer`` entries are tried first).
            Ignored for safetensors (flat by format).
    Raises:
        CheckpointError: the file is missing, unreadable, of an unknown type, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        state_dict = _load_safetensors(path)
        if key is not None:
            log.debug("%s: safetensors files are flat; ignoring key=%r", path, key)
        if not state_dict:
            raise CheckpointError(f"{path} contains no tensors")
        return state_dict
    if suffix in TORCH_SUFFIXES:
        return unwrap_state_dict(_load_torch(path), key=key, source=str(path), prefer=prefer)
    raise CheckpointError(
        f"unsupported checkpoint type '{path.suffix}' for {path}; expected one of "
        f"{', '.join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))}"
    )
