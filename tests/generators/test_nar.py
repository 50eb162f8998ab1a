import torch

from arforge.generators import BackboneConfig, NARConfig, NARGenerator, RasterConfig, RasterGenerator
from arforge.generators.nar import average_heads
from arforge.samplers import build_sampler

BACKBONE = dict(dim=32, n_layer=2, n_head=2, multiple_of=16)


def nar(grid=(4, 5)) -> NARGenerator:
    gen = NARGenerator(NARConfig(vocab_size=11, grid_size=grid, num_classes=3, backbone=BackboneConfig(**BACKBONE)))
    torch.manual_seed(0)
    for p in gen.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return gen.eval()


def test_cached_wave_decoding_matches_teacher_forcing(decode_by_schedule):
    gen = nar()
    tokens, labels = torch.randint(0, 11, (2, 20)), torch.tensor([0, 2])
    with torch.no_grad():
        full = gen(tokens, labels)
    torch.testing.assert_close(decode_by_schedule(gen, tokens, labels), full, atol=1e-5, rtol=1e-5)


def test_interior_logits_average_the_right_and_below_heads():
    gen = nar(grid=(3, 3))
    tokens, labels = torch.randint(0, 11, (1, 9)), torch.tensor([1])
    with torch.no_grad():
        logits = gen(tokens, labels)
        x = torch.cat([gen.prefix_embeddings(labels), gen.tok_embeddings(tokens[:, :8])], 1)
        arr = gen.order.training_arrangement(1)
        h = gen.run_layers(x, gen.rope_slots[:9], arr.mask_LL)
    # token (1, 1) = raster 4: right head at (1, 0) = slot 1 + 3, below head at (0, 1) = slot 1 + 1
    expected = (gen.output(h[:, 4]) + gen.output_below(h[:, 2])) / 2
    torch.testing.assert_close(logits[:, 4], expected)
    torch.testing.assert_close(logits[:, 3], gen.output_below(h[:, 1]))  # (1, 0): below head only
    torch.testing.assert_close(logits[:, 1], gen.output(h[:, 1]))  # (0, 1): right head only


def test_on_one_row_it_is_the_raster_generator():
    raster = RasterGenerator(RasterConfig(vocab_size=11, grid_size=(1, 7), num_classes=3, backbone=BackboneConfig(**BACKBONE)))
    torch.manual_seed(1)
    for p in raster.parameters():
        torch.nn.init.normal_(p, std=0.2)
    gen = NARGenerator(NARConfig(vocab_size=11, grid_size=(1, 7), num_classes=3, backbone=BackboneConfig(**BACKBONE)))
    state = raster.state_dict()
    gen.load_state_dict({**state, "output_below.weight": state["output.weight"]}, strict=True)
    tokens, labels = torch.randint(0, 11, (2, 7)), torch.tensor([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(gen.eval()(tokens, labels), raster.eval()(tokens, labels), atol=1e-6, rtol=1e-6)


def test_sampler_emits_a_wave_per_pass():
    gen = nar(grid=(8, 8))
    res = build_sampler("ar", cfg=2.0).sample(gen, torch.tensor([0, 1, 2, 0]), generator_rng=torch.Generator().manual_seed(0))
    assert res.tokens.shape == (4, 8, 8) and res.stats.forward_passes == 15
    assert res.stats.accepted_per_step == [float(min(c, 14 - c) + 1) for c in range(15)]


def test_average_heads_ignores_unused_heads():
    logits = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[2.0, 2.0], [100.0, 100.0]]]])  # (B=1, E=2, H=2, V=2)
    use = torch.tensor([[True, True], [True, False]])
    torch.testing.assert_close(average_heads(logits, use), torch.tensor([[[3.0, 5.0], [2.0, 2.0]]]))


def test_video_grid_uses_a_time_head_and_decodes_like_teacher_forcing(decode_by_schedule):
    gen = NARGenerator(NARConfig(vocab_size=11, grid_size=(2, 3, 3), num_classes=3, backbone=BackboneConfig(dim=48, n_layer=2, n_head=2, multiple_of=16)))
    torch.manual_seed(0)
    for p in gen.parameters():
        torch.nn.init.normal_(p, std=0.2)
    gen.eval()
    assert len(gen.direction_heads()) == 3
    tokens, labels = torch.randint(0, 11, (2, 18)), torch.tensor([0, 1])
    with torch.no_grad():
        full = gen(tokens, labels)
    torch.testing.assert_close(decode_by_schedule(gen, tokens, labels), full, atol=1e-5, rtol=1e-5)
    res = build_sampler("ar").sample(gen, labels, generator_rng=torch.Generator().manual_seed(0))
    assert res.tokens.shape == (2, 2, 3, 3) and res.stats.forward_passes == 2 + 3 + 3 - 2
