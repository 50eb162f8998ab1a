"""The :class:`Tokenizer` protocol: what samplers, data caches, evaluation and pipelines rely on.

Every built-in tokenizer (``vq``, ``msvq``, ``video_vq``, ``kl``) satisfies it, and a user's tokenizer
needs nothing more to train generators on its codes and sample through it (docs/extending.md).
``isinstance(obj, Tokenizer)`` checks that the attributes exist (not their types).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Tokenizer(Protocol):
    """Images <-> tokens.

    Attributes / methods:
        is_continuous: ``False`` for discrete codes (int64), ``True`` for continuous latents (float).
        codebook_size: number of codes ``K`` (discrete tokenizers).
        device: where the tokenizer's parameters live; inputs go there.
        grid_shape(image_size): the token grid ``(h, w)`` (or ``(1, L)`` for a multi-scale pyramid)
            of an image of ``image_size`` pixels (int or ``(H, W)``).
        encode(images_BCHW): images in ``[-1, 1]`` -> codes ``(B, h, w)`` int64 in ``[0, K)`` (discrete)
            or latents ``(B, c, h, w)`` float, scaled as ``decode`` expects (continuous).
        decode(codes): the inverse: images ``(B, C, H, W)`` (about ``[-1, 1]``; callers clamp).

    Optional: ``codebook`` (``(K, d)`` code vectors; LANTERN's neighbourhoods), ``latent_channels``
    and ``scaling_factor`` (continuous tokenizers), ``save_pretrained`` / ``from_pretrained``.
    """

    is_continuous: bool

    @property
    def device(self) -> torch.device: ...

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, ...]: ...

    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...
