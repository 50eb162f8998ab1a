"""Distribution oracles shared by the sampler tests."""

import itertools

import pytest
import torch
from scipy.stats import chisquare

from arforge.samplers import CFGSchedule, LogitsPipeline


def exact_joint(gen, label, cfg: CFGSchedule, logits: LogitsPipeline, vocab: int, n: int, arrangement=None) -> dict:
    """P(sequence) under plain AR sampling with guidance and processors, by enumeration; with
    ``arrangement`` (e.g. the ZipAR order's exact layout) the conditionals are the ones that
    teacher-forcing layout computes."""
    joint = {}
    seqs = list(itertools.product(range(vocab), repeat=n))
    with torch.no_grad():
        for start in range(0, len(seqs), 4096):  # batched: every sequence is an independent teacher-forced row
            chunk = seqs[start:start + 4096]
            x = torch.tensor(chunk)
            labels = label.expand(len(chunk))
            cond = gen(x, labels, arrangement=arrangement)
            if cfg.enabled:
                unc = gen(x, gen.null_condition(labels), arrangement=arrangement)
                scale = cfg.scales(torch.arange(n) / n)[:, None]
                cond = unc + (cond - unc) * scale
            probs = logits.probs(cond)
            picked = probs.gather(-1, x[..., None]).squeeze(-1).double().prod(-1)
            joint.update(zip(chunk, picked.tolist()))
    return joint


def assert_samples_follow(tokens_Bn: torch.Tensor, joint: dict, min_p: float = 0.001) -> None:
    """Chi-square test of sampled sequences against ``joint``; nothing outside its support."""
    n = tokens_Bn.shape[0]
    counts = {k: 0 for k in joint}
    for row in tokens_Bn.tolist():
        counts[tuple(row)] += 1
    assert sum(counts[k] for k in joint if joint[k] == 0) == 0  # nothing outside the support (top-k / top-p)
    keys = [k for k, v in joint.items() if v > 0]
    total = sum(joint[k] for k in keys)
    expected = [joint[k] / total * n for k in keys]
    big = [i for i, e in enumerate(expected) if e >= 5]  # chi-square needs expected counts >= 5
    obs = [counts[keys[i]] for i in big]
    exp = [expected[i] for i in big]
    exp = [e * sum(obs) / sum(exp) for e in exp]
    assert len(obs) >= 5, "the oracle needs a spread-out distribution"
    assert chisquare(obs, exp).pvalue > min_p


@pytest.fixture
def joint_oracle():
    """``(exact_joint, assert_samples_follow)``."""
    return exact_joint, assert_samples_follow


@pytest.fixture
def poison_new_caches(monkeypatch):
    """``poison(generator)``: every KV cache the generator creates from now on starts with garbage
    (N(0, 100)) in all K/V buffers, so reading a slot that was never written changes the samples."""

    def poison(gen):
        original = gen.new_cache

        def poisoned(*args, **kwargs):
            cache = original(*args, **kwargs)
            for k, v in zip(cache.k, cache.v):
                k.normal_(0, 100.0)
                v.normal_(0, 100.0)
            return cache

        monkeypatch.setattr(gen, "new_cache", poisoned)

    return poison
