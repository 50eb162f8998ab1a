import pytest
import torch

from arforge.samplers import CFGSchedule, LogitsPipeline, TopK, TopP


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0]])
    out = TopK(2)(logits)
    assert torch.isinf(out).tolist() == [[True, False, True, False]]


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = TopP(0.75)(probs.log())
    assert torch.isinf(out).tolist() == [[False, False, True, True]]
    # the most likely token always survives
    assert not torch.isinf(TopP(0.1)(probs.log())[0, 0])


def test_temperature_and_greedy():
    logits = torch.tensor([[0.0, 1.0]])
    p1 = LogitsPipeline(temperature=1.0).probs(logits)
    p_hot = LogitsPipeline(temperature=0.5).probs(logits)
    assert p_hot[0, 1] > p1[0, 1]
    assert LogitsPipeline(greedy=True).sample(logits).item() == 1
    with pytest.raises(ValueError, match="temperature"):
        LogitsPipeline(temperature=0).probs(logits)


def test_sampling_is_reproducible_with_explicit_rng():
    logits = torch.randn(64, 100)
    pipe = LogitsPipeline(top_k=20, top_p=0.9)
    a = pipe.sample(logits, torch.Generator().manual_seed(3))
    b = pipe.sample(logits, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_cfg_schedules():
    assert CFGSchedule(3.0).scale_at(0.7) == 3.0
    lin = CFGSchedule(3.0, "linear")
    assert lin.scale_at(0.0) == 1.0 and lin.scale_at(1.0) == 3.0 and lin.scale_at(0.5) == 2.0
    inter = CFGSchedule(4.0, "interval", start=0.0, end=0.5)
    assert inter.scale_at(0.25) == 4.0 and inter.scale_at(0.75) == 1.0
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert CFGSchedule.combine(c, u, 3.0).item() == 4.0
    with pytest.raises(ValueError, match="schedule"):
        CFGSchedule(2.0, "cosine")
