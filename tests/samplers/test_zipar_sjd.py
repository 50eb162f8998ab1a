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


def _zipar_sjd_pvalue(gen, sampler, joint, n, seed=0):
    from scipy.stats import chisquare

    tokens = sampler.sample(gen, torch.tensor([1]).repeat(n), generator_rng=torch.Generator().manual_seed(seed)).tokens.view(n, -1)
    counts = {k: 0 for k in joint}
    for row in tokens.tolist():
        counts[tuple(row)] += 1
    keys = [k for k in joint if joint[k] * n >= 5]
    obs = [counts[k] for k in keys]
    exp = [joint[k] * n for k in keys]
    return chisquare(obs, [e * sum(obs) / sum(exp) for e in exp]).pvalue



def test_zipar_sjd_with_drafts_follows_zipars_own_joint_and_the_oracle_bites(tiny_raster, joint_oracle, monkeypatch):
    """window 1 < W and draft > 1: rows run ahead of ZipAR's schedule when drafts are accepted, yet every
    token sees exactly ZipAR's context, so the samples follow ZipAR's joint. Broken variants fail: drafts
    seen by another row; no ZipAR context rule (what the sampler did before); rejected drafts kept valid
    with visibility by cache validity alone. (With the context rule in place a stale rejected draft is
    never visible, so rolling it back is a second line of defence, not what exactness rests on.)"""
    import arforge.samplers.zipar_sjd as zs
    from arforge.generators.orders import ZipAR

    exact_joint, _ = joint_oracle
    grid, vocab, n = (3, 3), 3, 20000
    gen = tiny_raster(vocab=vocab, grid=grid, std=1.0, seed=2)
    torch.manual_seed(2)
    joint = exact_joint(gen, torch.tensor([1]), CFGSchedule(1.0), LogitsPipeline(), vocab, 9,
                        arrangement=ZipAR(grid, 1).training_arrangement(gen.num_prefix))
    assert sum(1 for v in joint.values() if v * n >= 5) >= 30  # a spread-out distribution
    sampler = ZipARSJDSampler(window=1, draft=3)
    assert _zipar_sjd_pvalue(gen, ZipARSampler(window=1), joint, n) > 0.001  # ZipAR itself
    assert _zipar_sjd_pvalue(gen, sampler, joint, n) > 0.001

    own_rule, zipar_rule = zs.ZipARSJDSampler._visibility, zs.zipar_visibility
    fed = {}

    def drafts_seen_by_other_rows(valid_BS, slot_BT, seg_BT, kind_BT, slots):  # both masks let every draft through
        fed["drafts_BS"] = torch.zeros_like(valid_BS).scatter_(1, slot_BT, (kind_BT == zs.DRAFT))
        return own_rule(valid_BS, slot_BT, seg_BT, kind_BT, slots) | fed["drafts_BS"][:, None, :]

    with monkeypatch.context() as m:
        m.setattr(zs.ZipARSJDSampler, "_visibility", staticmethod(drafts_seen_by_other_rows))
        m.setattr(zs, "zipar_visibility", lambda *args: zipar_rule(*args) | fed["drafts_BS"][:, None, :])
        assert _zipar_sjd_pvalue(gen, sampler, joint, n) < 1e-6

    everything = lambda *args: torch.ones_like(zipar_rule(*args))  # noqa: E731
    with monkeypatch.context() as m:  # the sampler before this oracle: rows ahead of ZipAR's schedule show more context
        m.setattr(zs, "zipar_visibility", everything)
        assert _zipar_sjd_pvalue(gen, sampler, joint, n) < 1e-6

    with monkeypatch.context() as m:  # rejected drafts keep their K/V (only proxies rolled back), visibility by validity
        m.setattr(zs, "zipar_visibility", everything)
        m.setattr(zs.ZipARSJDSampler, "_rolled_back", staticmethod(lambda kind_BT, offset_BT, accepted_BT: kind_BT == zs.PROXY))
        assert _zipar_sjd_pvalue(gen, sampler, joint, n) < 1e-6
