"""The custom-sampler example in docs/samplers.md runs as written and registers a working sampler."""

import re
from pathlib import Path

import torch

from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator
from arforge.samplers import ARSampler, LogitsPipeline, build_sampler
from arforge.samplers.base import SAMPLERS

DOC = Path(__file__).resolve().parents[2] / "docs" / "samplers.md"


def test_docs_custom_sampler_example():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    try:
        exec(compile(blocks[0], str(DOC), "exec"), namespace)
        torch.manual_seed(0)
        gen = RasterGenerator(RasterConfig(vocab_size=12, grid_size=(3, 3), num_classes=3, class_dropout_prob=0.1,
                                           backbone=BackboneConfig(dim=32, n_layer=1, n_head=2, multiple_of=16))).eval()
        torch.nn.init.normal_(gen.output.weight, std=0.5)
        labels = torch.tensor([0, 2])
        greedy_all = build_sampler("greedy_head", greedy_tokens=9, cfg=2.0).sample(gen, labels)
        ref = ARSampler(cfg=2.0, logits=LogitsPipeline(greedy=True)).sample(gen, labels)
        assert torch.equal(greedy_all.tokens, ref.tokens) and greedy_all.stats.forward_passes == 9
        out = build_sampler("greedy_head", greedy_tokens=2, cfg=2.0).sample(
            gen, labels, generator_rng=torch.Generator().manual_seed(0))
        assert out.tokens.shape == (2, 3, 3) and torch.equal(out.tokens.flatten(1)[:, :2], ref.tokens.flatten(1)[:, :2])
    finally:
        SAMPLERS._entries.pop("greedy_head", None)
