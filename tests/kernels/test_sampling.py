"""Fused sampling: the Triton kernel (interpreted on CPU) draws the reference's tokens from the same
uniforms, and the draws follow the processed distribution of LogitsPipeline (chi-square)."""

import pytest
import torch
from scipy.stats import chisquare

from arforge.kernels.sampling import row_uniforms, sample_tokens
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.logits import LogitsPipeline

SETTINGS = [dict(), dict(temperature=0.6), dict(top_k=5), dict(top_p=0.7), dict(top_k=8, top_p=0.6),
            dict(cfg_scale=2.5), dict(cfg_scale=1.5, temperature=1.5, top_k=6, top_p=0.9)]


def _pooled_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Chi-square p-value of ``counts`` against ``probs``, bins expecting < 5 draws pooled into one."""
    expected = probs / probs.sum() * counts.sum()
    small = expected < 5
    obs = torch.cat([counts[~small], counts[small].sum().view(1)]) if small.any() else counts
    exp = torch.cat([expected[~small], expected[small].sum().view(1)]) if small.any() else expected
    return float(chisquare(obs.numpy(), exp.numpy() * obs.sum().item() / exp.sum().item()).pvalue)


def _logits(R, V, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(R, V, generator=g) * scale, torch.randn(R, V, generator=g) * scale


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_triton_kernel_draws_the_reference_tokens(kw):
    cond, uncond = _logits(24, 37)
    seeds = torch.arange(24) * 7919 + 3
    extra = {"uncond": uncond} if "cfg_scale" in kw else {}
    ref = sample_tokens(cond, seeds, backend="reference", offset=5, **kw, **extra)
    tri = sample_tokens(cond, seeds, backend="triton", offset=5, **kw, **extra)
    assert torch.equal(ref, tri)
    assert ref.dtype == torch.int64 and ref.min() >= 0 and ref.max() < 37


def test_shapes_seeds_and_offsets():
    cond, _ = _logits(6, 11)
    seeds = torch.arange(6).view(2, 3)
    out = sample_tokens(cond.view(2, 3, 11), seeds, backend="reference")
    assert out.shape == (2, 3)
    again = sample_tokens(cond.view(2, 3, 11), seeds, backend="reference")
    assert torch.equal(out, again)  # reproducible from the seeds alone
    u0, u1 = row_uniforms(torch.arange(1000)), row_uniforms(torch.arange(1000), offset=1)
    assert 0 < float(u0.min()) and float(u0.max()) < 1 and not torch.equal(u0, u1)
    assert abs(float(u0.mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="seeds must have the logits' row shape"):
        sample_tokens(cond, torch.arange(5))
    with pytest.raises(ValueError, match="top_p in \\(0, 1\\]"):
        sample_tokens(cond, torch.arange(6), top_p=0.0)


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_draws_follow_the_processed_distribution(kw):
    V, N = 12, 20000
    cond, uncond = _logits(1, V, seed=4, scale=0.7)
    cfg = CFGSchedule(kw.get("cfg_scale", 1.0))
    guided = cfg.combine(cond, uncond, cfg.scale) if cfg.enabled else cond
    probs = LogitsPipeline(temperature=kw.get("temperature", 1.0), top_k=kw.get("top_k", 0),
                           top_p=kw.get("top_p", 1.0)).probs(guided)[0].double()
    extra = {"uncond": uncond.expand(N, V)} if "cfg_scale" in kw else {}
    draws = sample_tokens(cond.expand(N, V), torch.arange(N), backend="reference", **kw, **extra)
    counts = torch.bincount(draws, minlength=V).double()
    support = probs > 0
    assert support.sum() >= 3  # a distribution worth testing
    assert counts[~support].sum() == 0  # nothing outside the kept set
    assert _pooled_pvalue(counts[support], probs[support]) > 0.01


def test_a_chi_square_that_fails_when_the_nucleus_is_wrong():
    """The oracle above bites: top-p 0.7 draws do not pass as top-p 0.9 draws."""
    V, N = 12, 20000
    cond, _ = _logits(1, V, seed=4)
    probs = LogitsPipeline(top_p=0.9).probs(cond)[0].double()
    draws = sample_tokens(cond.expand(N, V), torch.arange(N), backend="reference", top_p=0.7)
    counts = torch.bincount(draws, minlength=V).double()
    support = probs > 0
    assert counts[~support].sum() == 0  # 0.7's nucleus lies inside 0.9's ...
    assert _pooled_pvalue(counts[support], probs[support]) < 1e-6  # ... but the draws are told apart


def test_dispatch_defaults_to_the_reference_on_cpu(monkeypatch):
    from arforge.kernels.dispatch import kernel_backend

    monkeypatch.delenv("ARFORGE_KERNELS", raising=False)
    assert kernel_backend("cpu") == "reference"
    monkeypatch.setenv("ARFORGE_KERNELS", "triton")
    assert kernel_backend("cpu") == "triton"  # TRITON_INTERPRET=1 in these tests
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="run on CUDA tensors, or on CPU under TRITON_INTERPRET=1"):
        kernel_backend("cpu")
    monkeypatch.setenv("ARFORGE_KERNELS", "fastest")
    with pytest.raises(ValueError, match="choose one of auto, reference, triton"):
        kernel_backend("cpu")
