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


@pytest.mark.parametrize("grid, s, proxy", [((4, 6), 2, "above"), ((5, 4), 1, "newest"), ((3, 5), 3, "above"),
                                             ((3, 5), 5, "above")])
def test_zipar_training_layout_reproduces_the_decode_path(grid, s, proxy, tiny_raster):
    """Teacher forcing under the ZipAR order's arrangement == the logits ZipAR decoding computes for
    the same tokens, for every token, row starts (proxy queries) included."""
    from arforge.generators.orders import ZipAR
    from arforge.samplers.ar import run_schedule
    from arforge.samplers.context import start_decoding

    gen = tiny_raster(grid=grid)
    rows, width = grid
    labels = torch.tensor([0, 2, 1])
    tokens = torch.randint(0, gen.vocab_size, (3, rows * width), generator=torch.Generator().manual_seed(0))
    seen = torch.zeros(3, rows * width, gen.vocab_size)

    def pick(logits, step):  # record what decoding computes, feed the given tokens
        seen[:, step.emit_E] = logits
        return tokens[:, step.emit_E]

    order = ZipAR(grid, s, proxy)
    with torch.no_grad():
        run_schedule(gen, order.decode_schedule(), start_decoding(gen, labels, CFGSchedule(1.0)), pick)
        layout = order.training_arrangement(gen.num_prefix)
        taught = gen(tokens, labels, arrangement=layout)
    torch.testing.assert_close(taught, seen, atol=1e-4, rtol=1e-4)
    assert (layout.side is None) == (s == width)
    if s == width:  # plain causal teacher forcing
        L = gen.num_prefix + rows * width - 1
        assert torch.equal(layout.mask_LL, torch.ones(L, L, dtype=torch.bool).tril())
    else:  # the first token of every row but row 0 comes from a proxy query
        assert sorted(layout.side.target_E.tolist()) == [r * width for r in range(1, rows)]


def test_zipar_aware_training_task_uses_the_visibility_on_some_batches():
    from arforge.train.tasks.zipar_aware import ZipARAwareTrainTask

    task = ZipARAwareTrainTask.from_config(
        {"family": "raster", "model": {"backbone": {"dim": 32, "n_layer": 1, "n_head": 2, "multiple_of": 16}},
         "window": 2, "prob": 1.0},
        {"codebook_size": 16, "grid_shape": [3, 4], "num_classes": 2})
    task.generator.eval()  # no class dropout: the losses below are compared exactly
    batch = {"codes": torch.randint(0, 16, (2, 3, 4)), "label": torch.tensor([0, 1])}
    torch.nn.init.normal_(task.generator.output.weight, std=0.5)
    loss_aware, _ = task.training_loss(batch, 0)
    task.prob = 0.0
    loss_plain, _ = task.training_loss(batch, 0)
    assert not torch.allclose(loss_aware, loss_plain)
    metrics = task.evaluate([batch])
    assert metrics["val_loss_zipar"] == pytest.approx(loss_aware.item(), rel=1e-5)
    assert metrics["val_loss"] == pytest.approx(loss_plain.item(), rel=1e-5)


def test_row_start_proxy_is_the_last_token_of_the_nearest_finished_row():
    from arforge.generators.orders import proxy_source

    width = 4
    assert proxy_source([4, 4, 3, 1], 3, width, "above") == 1 * width + 3  # row 1 is the nearest finished row
    assert proxy_source([4, 4, 3, 1], 3, width, "newest") == 2 * width + 2  # row 2's newest token
    assert proxy_source([3, 0], 1, width, "above") == 2  # no finished row yet: row 0's newest token
    with pytest.raises(ValueError, match="proxy"):
        proxy_source([3, 0], 1, width, "left")
    for proxy in ("above", "newest"):  # the schedule feeds exactly these sources at its proxy slots
        count = [0] * 6
        for step in zipar_schedule(6, 4, 1, proxy):
            for slot in step.proxies:
                src = step.feed_src[step.feed_idx.index(slot)]
                assert src == proxy_source(count, slot // 4 + 1, 4, proxy)
            for e in step.emit:
                count[e // 4] += 1


def test_proxy_choice_changes_samples_only_where_rows_start_early(tiny_raster):
    gen = tiny_raster(grid=(5, 4))
    labels = torch.tensor([0, 1, 2])

    def run(window, proxy):
        return ZipARSampler(window=window, proxy=proxy).sample(gen, labels, generator_rng=torch.Generator().manual_seed(3)).tokens

    assert torch.equal(run(4, "above"), run(4, "newest"))  # s = W: no proxies at all
    assert not torch.equal(run(1, "above"), run(1, "newest"))
    with pytest.raises(ValueError, match="proxy"):
        ZipARSampler(window=2, proxy="diagonal")
