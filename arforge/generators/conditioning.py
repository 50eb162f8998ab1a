"""Condition embedders: class labels (with a null class for CFG) and text-encoder features.

Both return a prefix of condition tokens ``(B, P, C)`` that a generator places before the image
tokens, and both know their *null* condition for classifier-free guidance. Label/caption dropout
happens only in training mode. Names follow LlamaGen (``embedding_table``; ``cap_proj.fc1/fc2``,
``uncond_embedding``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassEmbedder(nn.Module):
    """``nn.Embedding(num_classes + 1, dim)``; row ``num_classes`` is the null (unconditional) class.

    Args:
        num_classes: number of real classes; labels are ints in ``[0, num_classes]``.
        dim: embedding width.
        dropout_prob: probability of replacing a label by the null class in training (CFG). When
            0 no null row exists (LlamaGen convention) and CFG is unavailable.
    """

    def __init__(self, num_classes: int, dim: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.has_null = dropout_prob > 0
        self.embedding_table = nn.Embedding(num_classes + int(self.has_null), dim)

    @property
    def null_label(self) -> int:
        if not self.has_null:
            raise ValueError("this model was trained without label dropout: it has no null class, so CFG is unavailable")
        return self.num_classes

    def null_condition(self, labels_B: torch.Tensor) -> torch.Tensor:
        """The unconditional labels matching ``labels_B``."""
        return torch.full_like(labels_B, self.null_label)

    def forward(self, labels_B: torch.Tensor) -> torch.Tensor:
        """``labels_B`` int64 -> ``(B, 1, dim)``. Drops labels at random only when ``self.training``."""
        if labels_B.dim() != 1:
            raise ValueError(f"class labels must have shape (B,), got {tuple(labels_B.shape)}")
        if labels_B.numel() and (labels_B.min() < 0 or labels_B.max() > self.num_classes - 1 + int(self.has_null)):
            raise ValueError(f"class labels must lie in [0, {self.num_classes - 1}] (or {self.num_classes} for null)")
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(labels_B.shape[0], device=labels_B.device) < self.dropout_prob
            labels_B = torch.where(drop, torch.full_like(labels_B, self.num_classes), labels_B)
        return self.embedding_table(labels_B)[:, None]


class CaptionMLP(nn.Module):
    """Two bias-free linear layers with tanh-GELU between (LlamaGen ``MLP``)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=False)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    """Projects text-encoder features ``(B, P, caption_dim)`` to condition tokens ``(B, P, dim)``.

    ``uncond_embedding`` ``(P, caption_dim)`` is the null caption (a buffer, as in LlamaGen).
    """

    def __init__(self, caption_dim: int, dim: int, dropout_prob: float, num_tokens: int):
        super().__init__()
        self.cap_proj = CaptionMLP(caption_dim, dim, dim)
        self.register_buffer("uncond_embedding", torch.randn(num_tokens, caption_dim) / caption_dim**0.5)
        self.dropout_prob = dropout_prob

    def null_condition(self, caption_BPC: torch.Tensor) -> torch.Tensor:
        """The null caption, broadcast like ``caption_BPC``."""
        return torch.zeros_like(caption_BPC) + self.uncond_embedding.to(caption_BPC.dtype)

    def forward(self, caption_BPC: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(caption_BPC.shape[0], device=caption_BPC.device) < self.dropout_prob
            caption_BPC = torch.where(drop[:, None, None], self.uncond_embedding.to(caption_BPC.dtype), caption_BPC)
        return self.cap_proj(caption_BPC)
