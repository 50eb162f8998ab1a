"""ZipAR rows drafted and verified SJD-style: draft 1 == ZipAR bit for bit, window W is an exact
sampler of the raster model (batched, per-image schedules), ungenerated and rejected slots are
never read, and drafting lowers the number of forward passes.

Greedy samples with ``window < W`` depend on the schedule (how much of the row above is visible),
which depends on which random drafts were accepted, so batched and single runs may differ there."""

import pytest
import torch

from arforge.samplers import ARSampler, CFGSchedule, LogitsPipeline, ZipARSampler, ZipARSJDSampler


@pytest.mark.parametrize("s", [1, 2, 4])
def test_draft_one_is_zipar_bit_for_bit(s, tiny_raster):
    gen = tiny_raster(grid=(4, 6))
    labels = torch.tensor([0, 1, 2, 3, 1])
    cfg, logits = CFGSchedule(2.5, "linear"), LogitsPipeline(top_k=5, temperature=0.9)
    zipar = ZipARSampler(window=s, cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(4))
    both = ZipARSJDSampler(window=s, draft=1, cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(4))
    assert torch.equal(both.tokens, zipar.tokens)
    assert both.stats.forward_passes == zipar.stats.forward_passes == 3 * s + 6


@pytest.mark.parametrize("grid, draft, cfg", [((2, 2), 2, CFGSchedule(1.0)), ((2, 3), 3, CFGSchedule(2.0, "linear"))])
def test_window_equal_to_row_width_samples_the_exact_joint(grid, draft, cfg, tiny_raster, joint_oracle):
    """6000 images in one batch: every image accepts different drafts and follows its own schedule."""
    exact_joint, assert_samples_follow = joint_oracle
    vocab, n_tok = 3, grid[0] * grid[1]
    gen = tiny_raster(vocab=vocab, grid=grid, std=1.0, seed=2)
    label = torch.tensor([1])
    n = 6000
    sampler = ZipARSJDSampler(window=grid[1], draft=draft, cfg=cfg)
    out = sampler.sample(gen, label.repeat(n), generator_rng=torch.Generator().manual_seed(0))
    assert_samples_follow(out.tokens.view(n, n_tok), exact_joint(gen, label, cfg, LogitsPipeline(), vocab, n_tok))


def test_greedy_with_full_rows_equals_greedy_ar(tiny_raster):
    gen = tiny_raster()
    labels = torch.tensor([0, 1, 2, 3])
    logits, cfg = LogitsPipeline(greedy=True), CFGSchedule(3.0, "linear")
    ar = ARSampler(cfg=cfg, logits=logits).sample(gen, labels).tokens
    width = gen.order.grid_hw[1]
    out = ZipARSJDSampler(window=width, draft=3, cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    assert torch.equal(out.tokens, ar)


def test_rejected_drafts_proxies_and_ungenerated_slots_are_never_read(poison_new_caches, tiny_raster):
    """Garbage in every K/V slot not written by a kept token must not change any sample."""
    gen = tiny_raster(grid=(4, 6), vocab=8, std=0.3)
    labels = torch.tensor([0, 2, 3])
    sampler = ZipARSJDSampler(window=2, draft=3, cfg=2.0)
    clean = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    poison_new_caches(gen)
    dirty = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    assert torch.equal(clean.tokens, dirty.tokens)


def test_drafting_lowers_forward_passes_below_zipar(tiny_raster):
    gen = tiny_raster(grid=(8, 8), vocab=16, std=0.02)  # near-uniform p: random drafts are often accepted
    labels = torch.arange(4)
    zipar = ZipARSampler(window=2).sample(gen, labels, generator_rng=torch.Generator().manual_seed(0))
    both = ZipARSJDSampler(window=2, draft=4).sample(gen, labels, generator_rng=torch.Generator().manual_seed(0))
    assert zipar.stats.forward_passes == 7 * 2 + 8
    assert both.stats.forward_passes < zipar.stats.forward_passes
    assert max(both.stats.accepted_per_step) > max(zipar.stats.accepted_per_step)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="draft"):
        ZipARSJDSampler(window=2, draft=0)
