"""Exponential moving average of a module's weights.

After every optimizer step ``shadow <- decay * shadow + (1 - decay) * param`` for each floating-point
parameter; buffers (e.g. normalisation statistics, codebook usage) are copied as they are. The
shadow lives on the module's device, in the parameters' dtype.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from arforge.pretrained import CheckpointError, load_state_dict_strict


class EMA:
    """Shadow copy of ``module``'s state. ``decay`` in ``[0, 1)``; 0 makes the shadow track the weights exactly."""

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.module = module
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self._param_names = {name for name, p in module.named_parameters() if p.is_floating_point()}

    @torch.no_grad()
    def update(self) -> None:
        """Blend the module's current weights into the shadow (call once per optimizer step)."""
        for name, value in self.module.state_dict().items():
            target = self.shadow[name]
            if name in self._param_names:
                target.lerp_(value.detach().to(target.dtype), 1.0 - self.decay)
            else:
                target.copy_(value)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Load the shadow weights into ``module`` (same architecture as the tracked module)."""
        load_state_dict_strict(module, self.shadow, "the EMA weights")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow tensors, keyed like the tracked module's ``state_dict``."""
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor], source: str = "an EMA checkpoint") -> None:
        """Restore the shadow; keys and shapes must match exactly (raises ``CheckpointError`` otherwise)."""
        own = set(self.shadow)
        missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
        if missing or unexpected:
            raise CheckpointError(f"EMA weights from {source} do not match: missing {missing[:8]}, unexpected {unexpected[:8]}")
        for name, value in state.items():
            if tuple(value.shape) != tuple(self.shadow[name].shape):
                raise CheckpointError(
                    f"EMA weights from {source}: {name} has shape {tuple(value.shape)}, expected {tuple(self.shadow[name].shape)}"
                )
            self.shadow[name].copy_(value)
