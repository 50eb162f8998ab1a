"""Which implementation an op runs: ``"triton"`` or ``"reference"``.

``ARFORGE_KERNELS`` (``auto`` by default): ``auto`` picks Triton for CUDA tensors when Triton is
installed and the reference otherwise; ``reference`` always runs the PyTorch reference; ``triton``
always runs Triton, which needs CUDA tensors or ``TRITON_INTERPRET=1`` (Triton's CPU interpreter).
"""

from __future__ import annotations

import importlib.util
import os

import torch

ENV_VAR = "ARFORGE_KERNELS"
CHOICES = ("auto", "reference", "triton")


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def kernel_backend(device: torch.device | str) -> str:
    """``"triton"`` or ``"reference"`` for an op on tensors of ``device`` (see the module docstring).

    Raises ``ValueError`` for an unknown ``ARFORGE_KERNELS`` value and ``RuntimeError`` when
    ``triton`` is forced where it cannot run."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"{ENV_VAR}={choice!r}: choose one of {', '.join(CHOICES)}")
    device = torch.device(device)
    if choice == "reference":
        return "reference"
    if choice == "triton":
        if not triton_available():
            raise RuntimeError(f"{ENV_VAR}=triton but the triton package is not installed (pip install triton)")
        if device.type != "cuda" and not interpreting():
            raise RuntimeError(f"{ENV_VAR}=triton on {device}: Triton kernels run on CUDA tensors, or on CPU "
                               "under TRITON_INTERPRET=1")
        return "triton"
    return "triton" if device.type == "cuda" and triton_available() else "reference"
