"""Fused verification: the Triton kernel (interpreted) makes the reference's decisions from the same
seeds, and a committed token is distributed as p whatever q proposed (chi-square)."""

import pytest
import torch
from scipy.stats import chisquare

from arforge.kernels.verify import verify_drafts


def _window(B, T, V, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(B, T, V, generator=g) * 1.5, -1)
    q = torch.softmax(torch.randn(B, T, V, generator=g) * 1.5, -1)
    drafts = torch.multinomial(q.view(-1, V), 1, generator=g).view(B, T)
    return drafts, q, p


def test_triton_kernel_makes_the_reference_decisions():
    drafts, q, p = _window(40, 4, 19)
    seeds = torch.arange(40) * 31 + 5
    valid = torch.ones(40, 4, dtype=torch.bool)
    valid[::3, 3:] = False  # shorter windows near the end of an image
    q[1] = p[1]  # p == q: every draft accepted
    for offset in (0, 7):
        ref = verify_drafts(drafts, q, p, seeds, offset=offset, valid_BT=valid, backend="reference")
        tri = verify_drafts(drafts, q, p, seeds, offset=offset, valid_BT=valid, backend="triton")
        assert torch.equal(ref[0], tri[0]) and torch.equal(ref[1], tri[1])
    assert ref[0][1] == 4 and ref[1][1] == -1
    assert (ref[0][::3] <= 3).all()


def test_the_committed_token_follows_p():
    V, N = 6, 30000
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(V, generator=g), -1)
    q = torch.softmax(torch.randn(V, generator=g) * 2, -1)
    drafts = torch.multinomial(q, N, replacement=True, generator=g).view(N, 1)
    n, nxt = verify_drafts(drafts, q.expand(N, 1, V), p.expand(N, 1, V), torch.arange(N), backend="reference")
    committed = torch.where(n == 1, drafts[:, 0], nxt)
    counts = torch.bincount(committed, minlength=V).double()
    assert chisquare(counts.numpy(), (p.double() * N).numpy() * counts.sum().item() / (p.double() * N).sum().item()).pvalue > 0.01
    # the oracle bites: committing the draft regardless follows q, not p
    biased = torch.bincount(drafts[:, 0], minlength=V).double()
    assert chisquare(biased.numpy(), (p.double() * N).numpy()).pvalue < 1e-6


def test_shapes_are_checked():
    drafts, q, p = _window(2, 3, 5)
    with pytest.raises(ValueError, match="expected p, q"):
        verify_drafts(drafts, q, p, torch.arange(3))
