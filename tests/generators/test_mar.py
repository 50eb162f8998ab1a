"""MAR generator: masking schedules, training loss, bidirectional trunk contracts."""

import pytest
import torch

from arforge.generators.mar import MARConfig
from arforge.generators.orders.masked import MaskedRandomOrder


def test_unmask_schedule_is_cosine_and_complete():
    order = MaskedRandomOrder((4, 4))
    lengths = order.unmask_schedule(4)
    assert lengths == [14, 11, 6, 0]  # floor(16 cos(pi/2 * s/4)) for s = 1, 2, 3, then everything
    assert order.unmask_schedule(1) == [0]
    assert all(a > b for a, b in zip([16] + lengths, lengths))
    with pytest.raises(ValueError):
        order.unmask_schedule(0)


def test_training_masks_and_ratios():
    order = MaskedRandomOrder((4, 4), mask_ratio_min=0.7)
    g = torch.Generator().manual_seed(0)
    ratios = [order.sample_mask_ratio(g) for _ in range(2000)]
    assert 0.7 <= min(ratios) and max(ratios) <= 1.0 and 0.85 < sum(ratios) / len(ratios) < 0.9  # truncnorm mean ~0.87
    orders = order.sample_orders(5, g)
    assert torch.equal(orders.sort(1).values, torch.arange(16).expand(5, -1))
    mask = order.training_mask(orders, g)
    assert len(set(mask.sum(1).tolist())) == 1 and mask.sum(1)[0] >= 12  # ceil(16 * 0.7)


def test_known_tokens_drive_the_conditions_and_unknown_ones_do_not(tiny_mar):
    model = tiny_mar().eval()
    tokens = torch.randn(2, 9, 2)
    mask = torch.zeros(2, 9)
    mask[:, 4:] = 1
    emb = model.class_embedding(torch.tensor([0, 1]))
    z = model.conditions(tokens, mask, emb)
    changed_unknown = tokens.clone()
    changed_unknown[:, 5] += 10
    assert torch.allclose(model.conditions(changed_unknown, mask, emb), z)  # masked values never leak in
    changed_known = tokens.clone()
    changed_known[:, 0] += 1
    assert not torch.allclose(model.conditions(changed_known, mask, emb)[:, 8], z[:, 8])  # bidirectional trunk


def test_training_reduces_the_loss(tiny_mar):
    model = tiny_mar().train()
    latents = torch.randn(1, 2, 3, 3).expand(8, -1, -1, -1).contiguous() * 0.5
    labels = torch.zeros(8, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = model.loss(latents, labels, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < sum(losses[:10])


def test_bad_shapes_and_configs_are_refused(tiny_mar):
    model = tiny_mar()
    with pytest.raises(ValueError, match="expected latents"):
        model.patchify(torch.zeros(1, 2, 4, 4))
    with pytest.raises(Exception, match="sampling_steps"):
        MARConfig(num_sampling_steps=2000)
    with pytest.raises(ValueError, match="class labels"):
        model.class_embedding(torch.tensor([3]))
