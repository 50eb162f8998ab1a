"""SJD: exact against the model's joint distribution (with CFG and top-k), greedy == AR, per-row
acceptance in a batch, rollback by truncation only, fewer forward passes on a predictable model."""

import pytest
import torch

from arforge.samplers import ARSampler, CFGSchedule, LogitsPipeline, build_sampler
from arforge.samplers.sjd import SJDSampler
from arforge.samplers.speculative import verify


@pytest.mark.parametrize("init, cfg, logits", [
    ("random", CFGSchedule(1.0), LogitsPipeline()),
    ("repeat_left", CFGSchedule(2.5, "linear"), LogitsPipeline(top_k=3)),
    ("spatial", CFGSchedule(1.5), LogitsPipeline(temperature=1.5, top_p=0.95)),
])
def test_sjd_matches_the_exact_joint_distribution(init, cfg, logits, tiny_raster, joint_oracle):
    exact_joint, assert_samples_follow = joint_oracle
    vocab, grid = 4, (2, 2)
    gen = tiny_raster(vocab=vocab, grid=grid, std=1.0, seed=1)
    label = torch.tensor([2])
    n = 6000
    sampler = SJDSampler(window=3, init=init, cfg=cfg, logits=logits)
    out = sampler.sample(gen, label.repeat(n), generator_rng=torch.Generator().manual_seed(0))
    assert_samples_follow(out.tokens.view(n, 4), exact_joint(gen, label, cfg, logits, vocab, 4))
    assert out.stats.forward_passes <= 4  # prefill + at most 3 windows for 4 tokens


def test_greedy_sjd_equals_greedy_ar_with_cfg(tiny_raster):
    gen = tiny_raster()
    labels = torch.tensor([0, 1, 2, 3])
    logits = LogitsPipeline(greedy=True)
    ar = ARSampler(cfg=CFGSchedule(3.0, "linear"), logits=logits).sample(gen, labels).tokens
    for init in ("random", "repeat_left", "spatial"):
        sjd = SJDSampler(window=5, init=init, cfg=CFGSchedule(3.0, "linear"), logits=logits)
        out = sjd.sample(gen, labels, generator_rng=torch.Generator().manual_seed(3))
        assert torch.equal(out.tokens, ar), init


def test_rows_accept_different_lengths_and_cache_is_never_copied(monkeypatch, tiny_raster):
    gen = tiny_raster(vocab=8, std=0.2)
    created = []
    original = gen.new_cache

    def spy(*args, **kwargs):
        cache = original(*args, **kwargs)
        created.append((cache, [k.data_ptr() for k in cache.k]))
        return cache

    monkeypatch.setattr(gen, "new_cache", spy)
    out = SJDSampler(window=6).sample(gen, torch.tensor([0, 1, 2, 3, 0, 1]), generator_rng=torch.Generator().manual_seed(0))
    cache, ptrs = created[0]
    assert len(created) == 1 and [k.data_ptr() for k in cache.k] == ptrs  # buffers kept: rollback = validity bits
    assert out.tokens.shape == (6, 3, 4)
    assert out.stats.forward_passes < 12  # fewer than one pass per token on this low-entropy model
    assert all(a >= 1 for a in out.stats.accepted_per_step)


def test_sjd_on_a_loaded_llamagen_checkpoint(llamagen_c2i):
    gen = llamagen_c2i
    labels = torch.tensor([1, 3])
    logits = LogitsPipeline(greedy=True)
    ar = ARSampler(cfg=2.0, logits=logits).sample(gen, labels).tokens
    sjd = build_sampler("sjd", window=4, cfg=2.0, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(0))
    assert torch.equal(sjd.tokens, ar)


def test_verify_rule():
    p = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]])
    q = torch.tensor([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]])
    v = verify(torch.tensor([[1, 0]]), q, p, torch.Generator().manual_seed(0))
    assert v.num_accepted_B.tolist() == [1] and v.next_token_B.tolist() == [1]  # p(0) = 0: reject, residual -> 1
    all_ok = verify(torch.tensor([[1, 1]]), q, torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]]))
    assert all_ok.num_accepted_B.tolist() == [2] and all_ok.next_token_B.tolist() == [-1]  # p/q >= 1 everywhere
    with pytest.raises(ValueError):
        SJDSampler(window=0)


def test_window_one_is_plain_ar_token_for_token(tiny_raster):
    gen = tiny_raster()
    labels = torch.tensor([0, 1, 2, 3])
    for cfg, logits in [(CFGSchedule(1.0), LogitsPipeline()), (CFGSchedule(2.0, "linear"), LogitsPipeline(top_k=5))]:
        ar = ARSampler(cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(9))
        sjd = SJDSampler(window=1, cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(9))
        assert torch.equal(sjd.tokens, ar.tokens) and sjd.stats.forward_passes == ar.stats.forward_passes


@pytest.mark.parametrize("init", ["repeat_left", "spatial"])
def test_structured_draft_fill_equals_the_left_to_right_definition(init):
    """The tensor-op fill == filling the window position by position (each copy may read the one before)."""
    from arforge.samplers.sjd import SJDSampler

    def sequential(tokens, drafted, start, idx, width):
        row = torch.arange(tokens.shape[0])
        for t in range(idx.shape[1]):
            pos = idx[:, t]
            src = pos - (1 if init == "repeat_left" else width)
            src = torch.where(src < 0, pos - 1, src).clamp(min=0)
            need = ~drafted[row, pos] & (pos >= start)
            tokens[row[need], pos[need]] = tokens[row[need], src[need]]
            drafted[row[need], pos[need]] = True

    g = torch.Generator().manual_seed(1)
    sampler = SJDSampler(window=9, init=init)
    for trial in range(20):
        B, N, width = 5, 30, int(torch.randint(2, 7, (1,), generator=g))
        tokens = torch.randint(0, 50, (B, N), generator=g)
        drafted = torch.rand(B, N, generator=g) < 0.3
        start = torch.randint(1, N, (B,), generator=g)
        idx = (start[:, None] + torch.arange(9)).clamp(max=N - 1)
        want_t, want_d = tokens.clone(), drafted.clone()
        sequential(want_t, want_d, start, idx, width)
        sampler._fill_structured(tokens, drafted, start, idx, width)
        assert torch.equal(tokens, want_t) and torch.equal(drafted, want_d), trial
