import pytest
import torch

from arforge.config import ConfigError
from arforge.generators import BackboneConfig, NBPConfig, NBPGenerator, RasterConfig, RasterGenerator
from arforge.auto import load_pretrained
from arforge.samplers import build_sampler

BACKBONE = dict(dim=32, n_layer=2, n_head=2, multiple_of=16)


def randomised(gen):
    torch.manual_seed(0)
    for p in gen.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return gen.eval()


def nbp(grid=(4, 4), block=(1, 4), hybrid_start=False) -> NBPGenerator:
    return randomised(NBPGenerator(NBPConfig(vocab_size=13, grid_size=grid, num_classes=3, block_size=block,
                                             hybrid_start=hybrid_start, backbone=BackboneConfig(**BACKBONE))))


def test_block_of_one_token_gives_the_raster_generators_logits():
    raster = randomised(RasterGenerator(RasterConfig(vocab_size=13, grid_size=(3, 4), num_classes=3,
                                                     backbone=BackboneConfig(**BACKBONE))))
    gen = NBPGenerator(NBPConfig(vocab_size=13, grid_size=(3, 4), num_classes=3, block_size=(1, 1),
                                 backbone=BackboneConfig(**BACKBONE))).eval()
    assert gen.start_tokens.shape == (0, 32)
    gen.load_state_dict({**raster.state_dict(), "start_tokens": gen.start_tokens.detach()}, strict=True)
    tokens, labels = torch.randint(0, 13, (2, 12)), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(gen(tokens, labels), raster(tokens, labels), rtol=0, atol=0)
        a = build_sampler("ar", cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(3))
        b = build_sampler("ar", cfg=2.0).sample(raster, labels, generator_rng=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens)


@pytest.mark.parametrize("block", [(1, 4), (2, 4), (2, 2), (4, 4)])
def test_cached_block_decoding_matches_teacher_forcing(block, decode_by_schedule):
    gen = nbp(block=block)
    tokens, labels = torch.randint(0, 13, (2, 16)), torch.tensor([1, 2])
    with torch.no_grad():
        full = gen(tokens, labels)
    torch.testing.assert_close(decode_by_schedule(gen, tokens, labels), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("block", [(1, 4), (2, 2), (2, 4), (4, 4)])
def test_hybrid_start_decoding_matches_teacher_forcing(block, decode_by_schedule):
    gen = nbp(block=block, hybrid_start=True)
    tokens, labels = torch.randint(0, 13, (2, 16)), torch.tensor([1, 2])
    with torch.no_grad():
        full = gen(tokens, labels)
    torch.testing.assert_close(decode_by_schedule(gen, tokens, labels), full, atol=1e-5, rtol=1e-5)


def test_hybrid_start_on_a_video_grid_matches_teacher_forcing(decode_by_schedule):
    gen = randomised(NBPGenerator(NBPConfig(vocab_size=13, grid_size=(3, 2, 4), num_classes=3, block_size=(1, 2, 4),
                                            hybrid_start=True, backbone=BackboneConfig(dim=48, n_layer=2, n_head=2,
                                                                                       multiple_of=16))))
    tokens, labels = torch.randint(0, 13, (2, 24)), torch.tensor([0, 2])
    with torch.no_grad():
        full = gen(tokens, labels)
    torch.testing.assert_close(decode_by_schedule(gen, tokens, labels), full, atol=1e-5, rtol=1e-5)


def test_hybrid_start_is_causal_inside_the_first_block_only():
    gen = nbp(block=(1, 4), hybrid_start=True)
    tokens, labels = torch.randint(0, 13, (1, 16)), torch.tensor([1])
    with torch.no_grad():
        base = gen(tokens, labels)
        for j in range(4):  # changing first-block token j changes the logits of tokens j+1.. only
            changed = tokens.clone()
            changed[:, j] = (changed[:, j] + 1) % 13
            out = gen(changed, labels)
            torch.testing.assert_close(out[:, :j + 1], base[:, :j + 1])
            assert not torch.allclose(out[:, j + 1:8], base[:, j + 1:8])  # rest of block 0 and all of block 1
        changed = tokens.clone()
        changed[:, 5] = (changed[:, 5] + 1) % 13  # block 1 stays bidirectional: block 2 sees all of it
        out = gen(changed, labels)
        torch.testing.assert_close(out[:, :8], base[:, :8])
        assert not torch.allclose(out[:, 8:12], base[:, 8:12])


def test_hybrid_start_takes_b_plus_blocks_minus_one_passes():
    gen = nbp(grid=(4, 4), block=(1, 4), hybrid_start=True)
    res = build_sampler("ar", cfg=1.5).sample(gen, torch.tensor([0, 2]), generator_rng=torch.Generator().manual_seed(0))
    assert res.stats.forward_passes == 4 + 4 - 1
    assert res.stats.accepted_per_step == [1.0] * 4 + [4.0] * 3
    assert gen.order.num_decode_steps() == 7


def test_hybrid_start_with_the_whole_grid_as_one_block_is_raster():
    raster = randomised(RasterGenerator(RasterConfig(vocab_size=13, grid_size=(3, 4), num_classes=3,
                                                     backbone=BackboneConfig(**BACKBONE))))
    gen = randomised(NBPGenerator(NBPConfig(vocab_size=13, grid_size=(3, 4), num_classes=3, block_size=(3, 4),
                                            hybrid_start=True, backbone=BackboneConfig(**BACKBONE))))
    gen.load_state_dict({**raster.state_dict(), "start_tokens": gen.start_tokens.detach()}, strict=True)
    tokens, labels = torch.randint(0, 13, (2, 12)), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(gen(tokens, labels), raster(tokens, labels), rtol=1e-6, atol=1e-6)
        a = build_sampler("ar", cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(3))
        b = build_sampler("ar", cfg=2.0).sample(raster, labels, generator_rng=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens) and a.stats.forward_passes == 12


def test_hybrid_start_with_one_token_blocks_is_plain_next_block():
    a, b = nbp(block=(1, 1), hybrid_start=True), nbp(block=(1, 1))
    tokens, labels = torch.randint(0, 13, (2, 16)), torch.tensor([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(a(tokens, labels), b(tokens, labels), rtol=0, atol=0)


def test_tokens_of_a_block_do_not_see_later_blocks():
    gen = nbp(block=(1, 4))
    tokens, labels = torch.randint(0, 13, (1, 16)), torch.tensor([1])
    changed = tokens.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 13
    with torch.no_grad():
        a, b = gen(tokens, labels), gen(changed, labels)
    torch.testing.assert_close(a[:, :12], b[:, :12])  # rows 0-2 are predicted from rows < 2
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_sampler_uses_one_pass_per_block_batched_and_seeded(tmp_path):
    gen = nbp(grid=(8, 8), block=(1, 8))
    labels = torch.tensor([0, 1, 2])
    sampler = build_sampler("ar", cfg=1.5)
    res = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    assert res.tokens.shape == (3, 8, 8) and res.stats.forward_passes == 8
    assert res.stats.accepted_per_step == [8.0] * 8
    again = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(1))
    assert torch.equal(res.tokens, again.tokens)
    gen.save_pretrained(tmp_path / "nbp")
    loaded = load_pretrained(tmp_path / "nbp")
    assert isinstance(loaded, NBPGenerator) and loaded.config.block_size == (1, 8)


def test_config_rejects_blocks_that_do_not_tile_and_captions():
    with pytest.raises(ConfigError, match="tile"):
        NBPConfig(vocab_size=8, grid_size=(4, 4), block_size=(1, 3))
    with pytest.raises(ConfigError, match="class"):
        NBPConfig(vocab_size=8, grid_size=(4, 4), block_size=(1, 4), condition="caption", cls_token_num=4)


def test_sjd_refuses_a_next_block_model():
    with pytest.raises(ValueError, match="raster"):
        build_sampler("sjd").sample(nbp(), torch.tensor([0]))


def test_frame_blocks_on_a_video_grid():
    gen = randomised(NBPGenerator(NBPConfig(vocab_size=13, grid_size=(3, 2, 4), num_classes=3, block_size=(1, 2, 4),
                                            backbone=BackboneConfig(dim=48, n_layer=2, n_head=2, multiple_of=16))))
    res = build_sampler("ar", cfg=2.0).sample(gen, torch.tensor([0, 2]), generator_rng=torch.Generator().manual_seed(0))
    assert res.tokens.shape == (2, 3, 2, 4) and res.stats.forward_passes == 3


def test_frame_prediction_keeps_the_prompt_frames_and_conditions_on_them():
    gen = randomised(NBPGenerator(NBPConfig(vocab_size=13, grid_size=(3, 2, 4), num_classes=3, block_size=(1, 2, 4),
                                            backbone=BackboneConfig(dim=48, n_layer=2, n_head=2, multiple_of=16))))
    labels = torch.tensor([0, 0])
    prompt = torch.randint(0, 13, (2, 8))  # the first latent frame
    sampler = build_sampler("ar", cfg=1.0)
    a = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(0), prompt_tokens=prompt)
    assert torch.equal(a.tokens[:, 0].flatten(1), prompt)
    b = sampler.sample(gen, labels, generator_rng=torch.Generator().manual_seed(0), prompt_tokens=(prompt + 1) % 13)
    assert not torch.equal(a.tokens[:, 1:], b.tokens[:, 1:])  # later frames depend on the prompt
    with pytest.raises(ValueError, match="prompt_tokens"):
        sampler.sample(gen, labels, prompt_tokens=torch.zeros(2, 30, dtype=torch.long))
