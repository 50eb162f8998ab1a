"""ZipAR: schedule counts, s = W equals raster AR bit for bit, ungenerated slots are masked,
batch and CFG, LlamaGen checkpoints."""

import pytest
import torch

from arforge.samplers import ARSampler, CFGSchedule, LogitsPipeline, ZipARSampler, build_sampler, zipar_schedule


@pytest.mark.parametrize("rows, width, s", [(4, 6, 6), (4, 6, 2), (16, 16, 8), (16, 16, 1), (24, 24, 8)])
def test_schedule_emits_every_token_once_in_closed_form_passes(rows, width, s):
    steps = zipar_schedule(rows, width, s)
    assert len(steps) == (rows - 1) * s + width
    emitted = [e for st in steps for e in st.emit]
    assert sorted(emitted) == list(range(rows * width))
    done = set()
    for st in steps:  # every fed source token exists before it is fed
        assert all(src in done for src in st.feed_src)
        done.update(st.emit)
    with pytest.raises(ValueError):
        zipar_schedule(4, 6, 7)


@pytest.mark.parametrize("cfg, logits", [(CFGSchedule(1.0), LogitsPipeline()),
                                         (CFGSchedule(2.5, "linear"), LogitsPipeline(top_k=5, temperature=0.9))])
def test_window_equal_to_row_width_is_raster_ar_bit_for_bit(cfg, logits, tiny_raster):
    gen = tiny_raster(grid=(4, 6))
    labels = torch.tensor([0, 1, 2, 3, 1])
    ar = ARSampler(cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(4))
    zip_ = ZipARSampler(window=6, cfg=cfg, logits=logits).sample(gen, labels, generator_rng=torch.Generator().manual_seed(4))
    assert torch.equal(zip_.tokens, ar.tokens) and zip_.stats.forward_passes == ar.stats.forward_passes == 24


def test_ungenerated_slots_are_masked_not_read(poison_new_caches, tiny_raster):
    """Garbage in the K/V buffers of slots not generated yet must not change any sample."""
    gen = tiny_raster(grid=(4, 6))
    labels = torch.tensor([0, 2])
    clean = ZipARSampler(window=2, cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    poison_new_caches(gen)
    dirty = ZipARSampler(window=2, cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    assert torch.equal(clean.tokens, dirty.tokens)
    assert clean.stats.forward_passes == 3 * 2 + 6 and max(clean.stats.accepted_per_step) == 3


def test_batch_rows_are_independent_under_greedy_and_llamagen_loads(llamagen_c2i):
    gen = llamagen_c2i
    side = gen.order.grid_hw[1]
    labels = torch.tensor([1, 3, 5])
    sampler = build_sampler("zipar", window=2, cfg=2.0, logits=LogitsPipeline(greedy=True))
    batched = sampler.sample(gen, labels).tokens
    single = torch.cat([sampler.sample(gen, labels[i:i + 1]).tokens for i in range(3)])
    assert torch.equal(batched, single)
    full = build_sampler("zipar", window=side, cfg=2.0, logits=LogitsPipeline(greedy=True)).sample(gen, labels).tokens
    assert torch.equal(full, ARSampler(cfg=2.0, logits=LogitsPipeline(greedy=True)).sample(gen, labels).tokens)


def test_zipar_training_visibility_matches_the_schedule():
    from arforge.samplers.zipar import zipar_schedule, zipar_training_visibility

    rows, width, s, P = 3, 5, 2, 1
    vis = zipar_training_visibility(rows, width, s, P)
    L = P + rows * width - 1
    assert vis.shape == (L, L) and not torch.triu(vis, 1).any()  # never sees the future
    assert torch.equal(zipar_training_visibility(rows, width, width, P), torch.ones(L, L, dtype=torch.bool).tril())
    emit_pass = {}
    for k, step in enumerate(zipar_schedule(rows, width, s)):
        for e in step.emit:
            emit_pass[e] = k
    for e in range(1, rows * width):
        q = P + e - 1
        for t in range(e):
            expected = emit_pass[t] < emit_pass[e] or t == e - 1
            assert bool(vis[q, P + t]) == expected, (e, t)
        assert vis[q, :P].all()


def test_zipar_aware_training_task_uses_the_visibility_on_some_batches():
    from arforge.train.tasks.generator import GeneratorTrainTask

    task = GeneratorTrainTask.from_config(
        {"family": "raster", "model": {"backbone": {"dim": 32, "n_layer": 1, "n_head": 2, "multiple_of": 16}},
         "zipar_aware": {"window": 2, "prob": 1.0}},
        {"codebook_size": 16, "grid_shape": [3, 4], "num_classes": 2})
    batch = {"codes": torch.randint(0, 16, (2, 3, 4)), "label": torch.tensor([0, 1])}
    torch.nn.init.normal_(task.generator.output.weight, std=0.5)
    loss_aware, _ = task.training_loss(batch, 0)
    task.zipar_aware = type(task.zipar_aware)(window=2, prob=0.0)
    loss_plain, _ = task.training_loss(batch, 0)
    assert not torch.allclose(loss_aware, loss_plain)
