"""Training checkpoints: atomic step folders, a ``latest`` pointer, pruning, and RNG state capture.

Layout inside the run folder::

    checkpoints/
      step_000500/
        task.safetensors      every tensor of task.state_dict() (model, discriminator, buffers)
        ema.safetensors       EMA shadow of the exported model (only with train.ema_decay > 0)
        state.safetensors     the tensors of the trainer state (optimizer moments, RNG states, ...)
        state.json            the rest of the trainer state, with references into state.safetensors
      step_001000/
      latest                  text file: the newest complete folder name ("step_001000")

Each step folder is written into a hidden temporary sibling and renamed into place when complete
(:func:`arforge.utils.io.atomic_directory`), and ``latest`` is rewritten atomically afterwards, so a
crash or a kill at any moment leaves either the old or the new checkpoint, never a partial one.
Nothing is pickled: nested trainer state (dicts with int keys, tuples, tensors, numpy arrays) is
encoded as JSON plus safetensors and decoded back exactly.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from arforge.pretrained import CheckpointError
from arforge.utils.io import atomic_directory, atomic_write_text, save_safetensors

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST_NAME = "latest"
TASK_FILE = "task.safetensors"
EMA_FILE = "ema.safetensors"
STATE_TENSORS_FILE = "state.safetensors"
STATE_JSON_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_REQUIRED = (TASK_FILE, STATE_TENSORS_FILE, STATE_JSON_FILE)
_MARKERS = ("__tensor__", "__tuple__", "__dict__", "__ndarray__")


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``step`` (optimizer steps done), the task and EMA tensors, and the trainer state."""

    path: Path
    step: int
    task_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None
    state: dict[str, Any]


def checkpoint_root(out_dir: str | Path) -> Path:
    """``out_dir/checkpoints``."""
    return Path(out_dir) / CHECKPOINT_DIR


def step_dir_name(step: int) -> str:
    """``500 -> "step_000500"``."""
    return f"step_{step:06d}"


# ----------------------------------------------------------------------------------------------
# nested state <-> (JSON, tensors)


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors):06d}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and not (len(obj) == 1 and next(iter(obj)) in _MARKERS):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (use tensors, numbers, strings, lists, dicts)")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1 and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if len(obj) == 1 and "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if len(obj) == 1 and "__dict__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    if set(obj) == {"__ndarray__", "dtype"}:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_nested_state(state: Mapping[str, Any], json_path: Path, tensors_path: Path) -> None:
    """Write nested ``state`` as ``json_path`` (structure) + ``tensors_path`` (safetensors, bit-exact)."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, tensors)
    save_safetensors(tensors, tensors_path)
    atomic_write_text(json_path, json.dumps(encoded))


def load_nested_state(json_path: Path, tensors_path: Path) -> dict[str, Any]:
    """Inverse of :func:`save_nested_state` (tensors load on CPU)."""
    return _decode(json.loads(json_path.read_text()), load_file(str(tensors_path)))


# ----------------------------------------------------------------------------------------------
# RNG states


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (legacy global) and torch CPU RNG states, plus every CUDA device's when CUDA is in use."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back the RNG states from :func:`capture_rng_state` (CUDA states only if CUDA is present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
            torch.cuda.set_rng_state_all(list(cuda_states))
        else:
            log.warning("the checkpoint holds RNG states of %d CUDA device(s) that this machine lacks; resumed "
                        "training will not be bitwise identical", len(cuda_states))


# ----------------------------------------------------------------------------------------------
# step folders


def _is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in _REQUIRED)


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoint folders of a run as ``(step, path)``, oldest first."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and _is_complete(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def find_latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of the run in ``out_dir``, or ``None``.

    Step folders only ever appear complete (they are renamed into place), so the highest step wins
    even if a crash came between that rename and the update of the ``latest`` pointer.
    """
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    task_state: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    ema_state: Mapping[str, torch.Tensor] | None = None,
    keep: int = 0,
) -> Path:
    """Write ``checkpoints/step_<step>/`` atomically, point ``latest`` at it, keep the newest ``keep`` (0 = all).

    ``task_state``/``ema_state``: flat tensor dicts (module ``state_dict``s). ``state``: nested
    trainer state (optimizer, scheduler, RNG, data order, ...). Returns the folder.
    """
    root = checkpoint_root(out_dir)
    name = step_dir_name(step)
    with atomic_directory(root / name) as tmp:
        save_safetensors(task_state, tmp / TASK_FILE, metadata={"step": str(step)})
        if ema_state is not None:
            save_safetensors(ema_state, tmp / EMA_FILE, metadata={"step": str(step)})
        save_nested_state({"step": step, **state}, tmp / STATE_JSON_FILE, tmp / STATE_TENSORS_FILE)
    atomic_write_text(root / LATEST_NAME, name + "\n")
    if keep:
        prune_checkpoints(out_dir, keep)
    log.debug("saved checkpoint %s", root / name)
    return root / name


def _remove_tree(path: Path) -> None:
    """Rename ``path`` to a hidden name first, so a half-deleted folder never looks like a checkpoint."""
    doomed = path.parent / f".{path.name}.del-{uuid.uuid4().hex[:8]}"
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def prune_checkpoints(out_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` (>= 1) checkpoint folders; returns the deleted paths."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    found = list_checkpoints(out_dir)
    doomed = [path for _, path in found[:-keep]]
    for path in doomed:
        _remove_tree(path)
    return doomed


def clean_stale_temporaries(out_dir: str | Path) -> list[Path]:
    """Remove leftovers of writes that were killed midway (hidden ``.step_*.tmp-*`` folders and the like)."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    stale = [p for p in root.iterdir() if p.name.startswith(".") and re.search(r"\.(tmp|old|del)-[0-9a-z_]+$", p.name)]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d leftover temporary file(s) of an interrupted checkpoint write in %s", len(stale), root)
    return stale


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder (tensors on CPU); raises :class:`CheckpointError` if it is incomplete or unreadable."""
    path = Path(path)
    if not _is_complete(path):
        missing = [name for name in _REQUIRED if not (path / name).is_file()]
        raise CheckpointError(f"{path} is not a complete training checkpoint (missing: {', '.join(missing) or 'the folder'})")
    try:
        task_state = load_file(str(path / TASK_FILE))
        ema_state = load_file(str(path / EMA_FILE)) if (path / EMA_FILE).is_file() else None
        state = load_nested_state(path / STATE_JSON_FILE, path / STATE_TENSORS_FILE)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    return Checkpoint(path=path, step=int(state["step"]), task_state=task_state, ema_state=ema_state, state=state)
