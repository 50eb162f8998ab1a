"""AdamW with weight decay only where it belongs (tensors with >= 2 dimensions)."""

from __future__ import annotations

import torch
from torch import nn

from arforge.train.schema import OptimConfig


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: >= 2-D trainable tensors with ``weight_decay``, the rest (biases, norm scales) without.

    Parameters shared between sub-modules appear once. Empty groups are dropped.
    """
    decay, no_decay = [], []
    for _, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``module``'s trainable parameters with ``cfg``'s lr, betas, eps and weight decay."""
    groups = param_groups(module, cfg.weight_decay)
    if not groups:
        raise ValueError(f"{type(module).__name__} has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
