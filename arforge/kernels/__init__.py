"""Kernels for the hot paths, one module per op, each a single public function with a PyTorch
reference and a Triton implementation:

* :func:`arforge.kernels.sampling.sample_tokens`: CFG mix, temperature, top-k / top-p and the
  categorical draw in one pass over the vocabulary, from explicit per-row seeds, sort-free;
* :func:`arforge.kernels.verify.verify_drafts`: speculative acceptance, first rejection per row and
  the residual draw, from the same seeds as the sampling op;
* :func:`arforge.kernels.vq.nearest_code`: blocked nearest-codebook search that never builds the
  ``N x K`` distance matrix.

Dispatch (:func:`arforge.kernels.dispatch.kernel_backend`): Triton on CUDA, the reference elsewhere;
``ARFORGE_KERNELS=reference|triton|auto`` overrides. ``TRITON_INTERPRET=1`` runs the Triton code on
CPU (the tests do). Importing :mod:`arforge` or this package never imports Triton; the Triton code is
imported on first use.
"""

from arforge.kernels.dispatch import kernel_backend

__all__ = ["kernel_backend"]
