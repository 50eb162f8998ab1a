"""MAR sampler: every token emitted exactly once, batched head calls, seeds, CFG, head-step override."""

import pytest
import torch

from arforge.samplers import CFGSchedule, MARSampler, build_sampler


def test_sampling_is_complete_seeded_and_counts_passes(tiny_mar):
    model = tiny_mar().eval()
    sampler = MARSampler(num_iter=4, cfg=CFGSchedule(2.0, "linear"), temperature=1.0)
    labels = torch.tensor([0, 1, 2])
    a = sampler.sample(model, labels, generator_rng=torch.Generator().manual_seed(0))
    b = sampler.sample(model, labels, generator_rng=torch.Generator().manual_seed(0))
    assert a.tokens.shape == (3, 2, 3, 3) and torch.equal(a.tokens, b.tokens)
    assert a.stats.forward_passes == 4 and sum(a.stats.accepted_per_step) == 9
    assert a.stats.head_evaluations == 4 * 10  # one batched head call of 10 steps per trunk pass
    c = sampler.sample(model, labels, generator_rng=torch.Generator().manual_seed(1))
    assert not torch.equal(a.tokens, c.tokens)


def test_head_steps_override_is_restored_and_registry_builds_it(tiny_mar):
    model = tiny_mar().eval()
    sampler = build_sampler("mar", num_iter=2, head_steps=3)
    out = sampler.sample(model, torch.tensor([0]), generator_rng=torch.Generator().manual_seed(0))
    assert out.stats.head_evaluations == 2 * 3
    assert model.diffloss.sample_diffusion.num_steps == 10


def test_decodes_with_a_tokenizer(tiny_mar):
    model = tiny_mar().eval()

    class Identity(torch.nn.Module):
        def decode(self, latents):
            return latents[:, :1].repeat(1, 3, 1, 1)

    out = MARSampler(num_iter=2).sample(model, torch.tensor([1]), generator_rng=torch.Generator().manual_seed(0),
                                        tokenizer=Identity())
    assert out.images.shape == (1, 3, 3, 3) and out.images.abs().max() <= 1


def test_sampler_specs_parse_and_pass_only_accepted_defaults():
    import pytest

    from arforge.samplers.base import build_sampler_with_defaults, parse_sampler_spec

    assert parse_sampler_spec("mar:num_iter=32, head_steps=20,temperature=0.9") == (
        "mar", {"num_iter": 32, "head_steps": 20, "temperature": 0.9})
    assert parse_sampler_spec("ar") == ("ar", {})
    sampler = build_sampler_with_defaults("mar:num_iter=8", cfg=CFGSchedule(2.0), logits=object(), temperature=0.5)
    assert sampler.num_iter == 8 and sampler.cfg.scale == 2.0 and sampler.temperature == 0.5  # logits: not a MAR option
    with pytest.raises(ValueError, match="not key=value"):
        parse_sampler_spec("mar:num_iter")
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        parse_sampler_spec("nope:x=1")
    with pytest.raises(ValueError, match="no option"):
        build_sampler_with_defaults("mar:window=3")


def test_disa_annealing_lowers_head_steps_as_the_image_fills_in(tiny_mar):
    model = tiny_mar().eval()
    N = model.num_tokens
    known_before = [0] + [N - m for m in model.order.unmask_schedule(4)][:-1]
    expected = [max(1, round(8 + (2 - 8) * k / N)) for k in known_before]
    out = build_sampler("mar", num_iter=4, head_steps=8, head_steps_end=2).sample(
        model, torch.tensor([0, 1]), generator_rng=torch.Generator().manual_seed(0))
    assert expected[0] == 8 and expected[-1] < 8
    assert out.stats.head_evaluations == sum(expected)
    assert model.diffloss.sample_diffusion.num_steps == 10  # the configured steps are restored
    cubic = [max(1, round(2 + (8 - 2) * (1 - k / N) ** 3)) for k in known_before]
    assert sum(cubic) < sum(expected)
    out = build_sampler("mar", num_iter=4, head_steps=8, head_steps_end=2, head_steps_power=3).sample(
        model, torch.tensor([0, 1]), generator_rng=torch.Generator().manual_seed(0))
    assert out.stats.head_evaluations == sum(cubic)
    with pytest.raises(ValueError, match="head_steps_power"):
        build_sampler("mar", head_steps_power=0)
