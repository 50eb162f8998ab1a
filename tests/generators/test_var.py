"""VAR family on the shared backbone: next-scale mask structure, KV-cached scale-by-scale decoding
equals the teacher-forced forward (per-block and shared adaLN), the CFG ramp over scales, and
in-painting that keeps the known tokens."""

import pytest
import torch

from arforge.generators import VARConfig, VARGenerator, var_backbone
from arforge.generators.orders import NextScale
from arforge.samplers import CFGSchedule, LogitsPipeline, VARSampler
from arforge.tokenizers import MultiScaleVQConfig, MultiScaleVQTokenizer

PATCH_NUMS = [1, 2, 4]


def tiny_var(shared: bool = False, seed: int = 0) -> VARGenerator:
    torch.manual_seed(seed)
    backbone = var_backbone(2, shared_adaln=shared)
    backbone.dim, backbone.n_head = 32, 2
    model = VARGenerator(VARConfig(vocab_size=16, latent_channels=4, patch_nums=PATCH_NUMS, num_classes=3,
                                   init_adaln_gamma=0.5, backbone=backbone))
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(1)
    cfg = MultiScaleVQConfig(patch_nums=PATCH_NUMS, codebook_size=16, latent_channels=4, block_out_channels=[8, 8],
                             layers_per_block=1, encoder_attn_levels=[], decoder_attn_levels=[], norm_num_groups=8)
    return MultiScaleVQTokenizer(cfg).eval()


def test_next_scale_mask_and_schedule_exact():
    order = NextScale([1, 2])
    expected = torch.tensor([[1, 0, 0, 0, 0]] + [[1, 1, 1, 1, 1]] * 4, dtype=torch.bool)
    assert torch.equal(order.block_causal_mask(), expected)
    assert order.num_tokens == 5 and order.num_decode_steps() == 2
    assert [s.emit_E.tolist() for s in order.decode_schedule()] == [[0], [1, 2, 3, 4]]
    assert NextScale([1, 2, 3]).level_L().tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    with pytest.raises(ValueError):
        NextScale([2, 2])


@pytest.mark.parametrize("shared", [False, True])
def test_kv_cached_scales_equal_teacher_forcing(shared, tokenizer):
    model = tiny_var(shared)
    tokens = tokenizer.encode(torch.rand(2, 3, 8, 8) * 2 - 1)
    indices = tokenizer.quantize.split(tokens)
    x = tokenizer.quantize.teacher_forcing_inputs(indices)
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        full = model(x, labels)
        cache = model.new_cache(2)
        cond = model.condition(labels)
        parts = [model.decode_scale(0, None, cond, cache)]
        for si in range(1, 3):
            sl = model.order.scale_slice(si)
            parts.append(model.decode_scale(si, x[:, sl.start - 1:sl.stop - 1], cond, cache))
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert full.shape == (2, 21, 16)


def test_cfg_ramps_linearly_over_scales(tokenizer, monkeypatch):
    model = tiny_var()
    seen_model, seen_sampled = [], []
    decode = model.decode_scale
    monkeypatch.setattr(model, "decode_scale", lambda *a, **k: seen_model.append(decode(*a, **k)) or seen_model[-1])

    class Recording(LogitsPipeline):
        def sample(self, logits, rng=None):
            seen_sampled.append(logits)
            return super().sample(logits, rng)

    sampler = VARSampler(cfg=CFGSchedule(4.0, "linear"), logits=Recording(greedy=True))
    sampler.sample(model, torch.tensor([1, 2]), tokenizer=tokenizer)
    for si, (both, mixed) in enumerate(zip(seen_model, seen_sampled)):
        w = 1 + 3.0 * si / 2  # guidance 1 at the first scale, 4 at the last
        torch.testing.assert_close(mixed, both[2:] + w * (both[:2] - both[2:]))


def test_inpainting_keeps_known_tokens(tokenizer):
    model = tiny_var()
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    known = tokenizer.quantize.split(tokenizer.encode(images))
    keep = torch.zeros(2, 8, 8, dtype=torch.bool)
    keep[:, :, :4] = True  # left half known
    out = VARSampler(cfg=2.0).inpaint(model, torch.tensor([0, 1]), images, keep, tokenizer=tokenizer,
                                      generator_rng=torch.Generator().manual_seed(0))
    got = tokenizer.quantize.split(out.tokens)
    for pn, k, g in zip(PATCH_NUMS, known, got):
        cols = torch.arange(pn * pn) % pn
        kept = (cols + 0.5) * 8 / pn <= 4  # cells at least half inside the left half
        assert torch.equal(g[:, kept], k[:, kept]), pn
    everything = VARSampler().inpaint(model, torch.tensor([0, 1]), images, torch.ones(2, 8, 8, dtype=torch.bool),
                                      tokenizer=tokenizer)
    assert torch.equal(everything.tokens, tokenizer.encode(images))


def test_sampler_checks_its_inputs(tokenizer):
    model = tiny_var()
    with pytest.raises(ValueError, match="multi-scale tokenizer"):
        VARSampler().sample(model, torch.tensor([0]))
    other = MultiScaleVQTokenizer(MultiScaleVQConfig(**{**tokenizer.config.__dict__, "patch_nums": [1, 4]}))
    with pytest.raises(ValueError, match="does not match"):
        VARSampler().sample(model, torch.tensor([0]), tokenizer=other)
