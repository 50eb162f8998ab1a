"""Checkpoint folders: exact state round trip, atomic writes, pointer, pruning, leftovers, RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import arforge.train.checkpoint as ckpt_mod
from arforge.pretrained import CheckpointError
from arforge.train.checkpoint import (
    capture_rng_state,
    clean_stale_temporaries,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3, generator=g)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.95), "params": [0], "fused": None}]},
        "odd": {"__tensor__": "not a tensor", 7: (1, "x")},
        "bf16": torch.randn(4, generator=g).to(torch.bfloat16),
        "np": np.arange(5, dtype=np.uint32),
        "nan": float("nan"),
    }


def test_nested_state_round_trip_is_exact(tmp_path):
    task = {"w": torch.randn(3, 3)}
    state = _state(0)
    path = save_checkpoint(tmp_path, 5, task, state, ema_state={"w": task["w"] * 2})
    assert path.name == "step_000005" and (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000005"
    ck = load_checkpoint(path)
    assert ck.step == 5 and torch.equal(ck.task_state["w"], task["w"]) and torch.equal(ck.ema_state["w"], task["w"] * 2)
    s = ck.state
    assert s["optimizer"]["state"][0]["exp_avg"].equal(state["optimizer"]["state"][0]["exp_avg"])
    assert s["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95) and s["optimizer"]["param_groups"][0]["fused"] is None
    assert s["odd"] == {"__tensor__": "not a tensor", 7: (1, "x")}
    assert s["bf16"].dtype == torch.bfloat16 and torch.equal(s["bf16"], state["bf16"])
    assert s["np"].dtype == np.uint32 and s["np"].tolist() == [0, 1, 2, 3, 4]
    assert np.isnan(s["nan"])


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 4, {"w": torch.ones(2)}, _state(1))
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())

    def explode(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt_mod, "save_nested_state", explode)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 8, {"w": torch.zeros(2)}, _state(2))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before  # no partial or temporary folder
    assert find_latest_checkpoint(tmp_path).name == "step_000004"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000004"
    assert torch.equal(load_checkpoint(find_latest_checkpoint(tmp_path)).task_state["w"], torch.ones(2))

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod, "save_nested_state", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 8, {"w": torch.zeros(2)}, _state(2))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_killed_write_leftovers_are_ignored_and_cleaned(tmp_path):
    save_checkpoint(tmp_path, 2, {"w": torch.ones(1)}, _state(0))
    root = tmp_path / "checkpoints"
    stale = root / ".step_000004.tmp-abc123"  # what a SIGKILL during a write leaves
    stale.mkdir()
    (stale / "task.safetensors").write_bytes(b"partial")
    incomplete = root / "step_000006"  # a folder without its files never counts
    incomplete.mkdir()
    assert find_latest_checkpoint(tmp_path).name == "step_000002"
    assert clean_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and incomplete.exists()
    with pytest.raises(CheckpointError, match="not a complete training checkpoint"):
        load_checkpoint(incomplete)


def test_highest_complete_step_wins_over_stale_pointer_and_pruning(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"w": torch.full((1,), float(step))}, _state(step))
    (tmp_path / "checkpoints" / "latest").write_text("step_000001\n")  # crash between rename and pointer update
    assert find_latest_checkpoint(tmp_path).name == "step_000003"
    save_checkpoint(tmp_path, 10, {"w": torch.zeros(1)}, _state(4), keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 10]
    assert find_latest_checkpoint(tmp_path / "nowhere") is None


def test_rng_state_capture_restore_reproduces_draws():
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)
    restore_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_rng_state_survives_a_checkpoint(tmp_path):
    rng = capture_rng_state()
    expected = torch.rand(4)
    path = save_checkpoint(tmp_path, 1, {"w": torch.ones(1)}, {"rng": rng})
    torch.rand(10)
    restore_rng_state(load_checkpoint(path).state["rng"])
    assert torch.equal(torch.rand(4), expected)
