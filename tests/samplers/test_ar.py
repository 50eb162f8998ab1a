import itertools

import pytest
import torch
from scipy.stats import chisquare

from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator
from arforge.samplers import ARSampler, CFGSchedule, LogitsPipeline, Sampler, SampleResult, SamplerStats, build_sampler, register_sampler
from arforge.samplers.base import SAMPLERS


def test_same_seed_same_tokens_and_stats(tiny_raster):
    gen = tiny_raster()
    sampler = ARSampler(cfg=CFGSchedule(2.0, "linear"), logits=LogitsPipeline(top_k=8, top_p=0.95))
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    a = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(7))
    b = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(7))
    c = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(8))
    assert a.tokens.shape == (8, 3, 4)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    assert a.stats.forward_passes == 12 and a.stats.tokens == 12


def test_batch_rows_are_independent_of_batch_size_under_greedy(tiny_raster):
    gen = tiny_raster()
    sampler = ARSampler(cfg=3.0, logits=LogitsPipeline(greedy=True))
    labels = torch.tensor([0, 1, 2, 3])
    batched = sampler.sample(gen, labels).tokens
    single = torch.cat([sampler.sample(gen, labels[i:i + 1]).tokens for i in range(4)])
    assert torch.equal(batched, single)


def test_ar_sampling_matches_the_models_joint_distribution(tiny_raster):
    """Oracle: enumerate every 1x2 image over a 3-token vocabulary and chi-square the sample counts."""
    gen = tiny_raster(vocab=3, grid=(1, 2), std=1.0, seed=1)
    label = torch.tensor([1])
    with torch.no_grad():
        joint = {}
        for seq in itertools.product(range(3), repeat=2):
            logp = gen(torch.tensor([seq]), label).log_softmax(-1)[0]
            joint[seq] = float(logp[0, seq[0]].exp() * logp[1, seq[1]].exp())
    n = 3000
    sampler = ARSampler()
    toks = sampler.sample(gen, label.repeat(n), generator_rng=torch.Generator().manual_seed(0)).tokens.view(n, 2)
    counts = [int(((toks[:, 0] == a) & (toks[:, 1] == b)).sum()) for a, b in joint]
    total = sum(joint.values())
    assert abs(total - 1.0) < 1e-5
    expected = [joint[k] / total * n for k in joint]
    assert chisquare(counts, expected).pvalue > 0.01


def test_users_can_register_their_own_sampler(tiny_raster):
    @register_sampler("test_greedy_only")
    class GreedyOnly(Sampler):
        def sample(self, generator, condition, *, generator_rng=None, tokenizer=None):
            inner = ARSampler(logits=LogitsPipeline(greedy=True)).sample(generator, condition)
            return SampleResult(tokens=inner.tokens, stats=SamplerStats(forward_passes=inner.stats.forward_passes))

    try:
        gen = tiny_raster()
        out = build_sampler("test_greedy_only").sample(gen, torch.tensor([1]))
        ref = ARSampler(logits=LogitsPipeline(greedy=True)).sample(gen, torch.tensor([1]))
        assert torch.equal(out.tokens, ref.tokens)
        with pytest.raises(KeyError, match="registered samplers"):
            build_sampler("no_such_sampler")
    finally:
        SAMPLERS._entries.pop("test_greedy_only", None)


def test_cfg_needs_a_null_class():
    gen = RasterGenerator(RasterConfig(vocab_size=8, grid_size=(2, 2), num_classes=3, class_dropout_prob=0.0,
                                       backbone=BackboneConfig(dim=16, n_layer=1, n_head=2, multiple_of=16)))
    with pytest.raises(ValueError, match="no null class"):
        ARSampler(cfg=2.0).sample(gen, torch.tensor([0]))
