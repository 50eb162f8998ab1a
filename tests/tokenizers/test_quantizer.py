"""Nearest-code vector quantizer: lookup, straight-through gradients, losses, usage tracking, restarts."""

import math

import pytest
import torch
import torch.nn.functional as F

from arforge.tokenizers.quantizer import USAGE_RING_SIZE, VectorQuantizer, entropy_loss, usage_stats


def _latents(b=2, d=4, h=3, w=5, seed=0):
    return torch.randn(b, d, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("l2_norm", [True, False])
def test_nearest_code_matches_brute_force(l2_norm):
    vq = VectorQuantizer(16, 4, l2_norm=l2_norm).eval()
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.randn(16, 4, generator=torch.Generator().manual_seed(1)))
    z = _latents()
    out = vq(z)
    z_flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    codebook = vq.embedding.weight
    if l2_norm:
        z_flat, codebook = F.normalize(z_flat, dim=-1), F.normalize(codebook, dim=-1)
    expected = torch.cdist(z_flat, codebook).argmin(dim=1).view(2, 3, 5)
    assert out.codes.dtype == torch.int64 and torch.equal(out.codes, expected)
    torch.testing.assert_close(out.z_q, codebook[expected].permute(0, 3, 1, 2))
    torch.testing.assert_close(vq.lookup(out.codes), out.z_q)
    if l2_norm:
        torch.testing.assert_close(vq.codebook.norm(dim=-1), torch.ones(16))


def test_straight_through_and_loss_gradients():
    vq = VectorQuantizer(8, 4, beta=0.25, l2_norm=False).train()
    z = _latents().requires_grad_(True)
    out = vq(z)
    # straight-through: d(sum z_q)/dz = 1 everywhere, and no gradient reaches the codebook
    out.z_q.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))
    assert vq.embedding.weight.grad is None
    # codebook loss moves only the codebook; the commitment loss moves only the encoder output
    z.grad = None
    vq(z).codebook_loss.backward()
    assert z.grad is None and vq.embedding.weight.grad.abs().sum() > 0
    vq.embedding.weight.grad = None
    out = vq(z)
    out.commit_loss.backward()
    assert vq.embedding.weight.grad is None and z.grad.abs().sum() > 0
    # values: commit = beta * codebook loss (same squared error)
    torch.testing.assert_close(out.commit_loss, 0.25 * out.codebook_loss)
    z_flat = z.detach().permute(0, 2, 3, 1)
    zq_flat = out.z_q.detach().permute(0, 2, 3, 1)
    torch.testing.assert_close(out.codebook_loss, (z_flat - zq_flat).pow(2).mean())


def test_unpacks_like_llamagen_tuple():
    vq = VectorQuantizer(8, 4).eval()
    z_q, codes, (codebook_loss, commit_loss, ent) = vq(_latents())
    assert z_q.shape == (2, 4, 3, 5) and codes.shape == (2, 3, 5) and ent.item() == 0.0


def test_usage_counts_and_ring_buffer():
    vq = VectorQuantizer(8, 4, l2_norm=False)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.eye(8, 4) * 10)  # code i (i < 4) sits at 10 * e_i; codes 4..7 at 0
    z = torch.zeros(1, 4, 1, 3)
    z[0, 0, 0, 0], z[0, 1, 0, 1], z[0, 1, 0, 2] = 10.0, 10.0, 9.0  # codes 0, 1, 1
    vq.eval()
    vq(z)
    assert vq.code_counts.sum() == 0, "eval mode must not count usage"
    vq.train()
    vq(z)
    vq(z)
    assert vq.code_counts.tolist() == [2, 4, 0, 0, 0, 0, 0, 0]
    fraction, perplexity = vq.usage()
    assert fraction == pytest.approx(2 / 8)
    p = torch.tensor([1 / 3, 2 / 3])
    assert perplexity == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    # LlamaGen's ring buffer: the newest indices at the end
    assert vq.codebook_used[-6:].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert vq.codebook_used.shape == (USAGE_RING_SIZE,)
    vq.reset_usage()
    assert vq.usage() == (0.0, 0.0)
    # the usage counter is not part of the checkpoint; the ring buffer is (LlamaGen layout)
    assert "code_counts" not in vq.state_dict() and "codebook_used" in vq.state_dict()
    assert "codebook_used" not in VectorQuantizer(8, 4, show_usage=False).state_dict()


def test_usage_stats_uniform():
    fraction, perplexity = usage_stats(torch.tensor([5, 5, 5, 5, 0, 0, 0, 0]))
    assert fraction == 0.5 and perplexity == pytest.approx(4.0)


def test_entropy_loss_formula_and_sign():
    # confident and spread over codes: sample entropy 0, batch entropy log(V) -> about -log(V)
    spread = torch.eye(4) * 100.0
    assert entropy_loss(spread, temperature=1.0).item() == pytest.approx(-math.log(4), abs=1e-3)
    # all latents pick the same code: both entropies 0
    collapsed = torch.zeros(4, 4)
    collapsed[:, 0] = 100.0
    assert entropy_loss(collapsed, temperature=1.0).item() == pytest.approx(0.0, abs=1e-3)
    vq = VectorQuantizer(8, 4, entropy_loss_ratio=0.5).train()
    z = _latents()
    out = vq(z)
    _, d = vq.nearest_codes(z.permute(0, 2, 3, 1).reshape(-1, 4))
    torch.testing.assert_close(out.entropy_loss, 0.5 * entropy_loss(-d, 0.01))


def test_restart_codes_normalises_rows():
    vq = VectorQuantizer(8, 4, l2_norm=True)
    vectors = torch.tensor([[3.0, 0.0, 0.0, 4.0], [0.0, 2.0, 0.0, 0.0]])
    vq.restart_codes(torch.tensor([2, 5]), vectors)
    torch.testing.assert_close(vq.embedding.weight[2], torch.tensor([0.6, 0.0, 0.0, 0.8]))
    torch.testing.assert_close(vq.embedding.weight[5], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="one 4-d vector per code id"):
        vq.restart_codes(torch.tensor([1]), vectors)


def test_input_validation():
    vq = VectorQuantizer(8, 4)
    with pytest.raises(ValueError, match=r"\(B, 4, h, w\)"):
        vq(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 8\)"):
        vq.lookup(torch.full((1, 2, 2), 8))
    with pytest.raises(ValueError, match="integer codes"):
        vq.lookup(torch.zeros(1, 2, 2))
