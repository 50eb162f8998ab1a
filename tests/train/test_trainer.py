"""The generic trainer on a tiny task: outputs, exact resume, interrupts, precision, accumulation, errors."""

from __future__ import annotations

import json
import random
import signal
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import arforge.train.checkpoint as ckpt_mod
from arforge.config import ConfigError
from arforge.pretrained import CheckpointError
from arforge.train.checkpoint import find_latest_checkpoint, list_checkpoints
from arforge.train.metrics import read_metrics
from arforge.train.schema import load_run_config, run_config_from_dict
from arforge.train.trainer import Trainer, train

from tiny_train_task import TinyClassifier, tiny_run_dict

TIMING_KEYS = {"time", "sec_per_step"}


def _cfg(**sections):
    return run_config_from_dict(tiny_run_dict(**sections))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def _records(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(run / "metrics.jsonl")]


def test_run_writes_metrics_checkpoints_config_and_model(tmp_path):
    cfg = _cfg(train={"eval_every": 6, "ema_decay": 0.5})
    result = train(cfg, tmp_path / "run", device="cpu")
    run = result.out_dir
    records = read_metrics(run / "metrics.jsonl")
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_records] == [4, 8, 12]
    for r in train_records:
        assert {"step", "lr", "loss", "acc", "grad_norm", "time"} <= set(r) and r["loss"] > 0
    assert train_records[0]["lr"] == pytest.approx(3e-3)  # warm-up done, cosine barely started
    assert [r["step"] for r in records if r["kind"] == "eval"] == [6, 12]
    assert 0.0 <= result.final_metrics["val_acc"] <= 1.0 and "loss" in result.final_metrics
    assert [s for s, _ in list_checkpoints(run)] == [8, 12]  # keep_checkpoints: 2
    saved = load_run_config(run / "config.yaml")
    assert saved == cfg
    model = TinyClassifier.from_pretrained(result.exported_model_dir)
    assert model.config.in_dim == 64 and model.config.num_classes == 10
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["ema"] is True
    # with EMA on, the export holds the EMA weights, which differ from the raw task weights
    raw = load_file(str(run / "checkpoints" / "step_000012" / "task.safetensors"))
    ema = load_file(str(run / "checkpoints" / "step_000012" / "ema.safetensors"))
    _assert_bitwise_equal(_weights(run), ema)
    assert not torch.equal(raw["model.net.0.weight"], ema["net.0.weight"])
    assert int(raw["steps_seen"]) == 12


_CRASH_STEPS = random.Random(1234).sample(range(1, 12), 2) + [4, 9]


@pytest.mark.parametrize("crash_step", _CRASH_STEPS)
def test_resume_after_crash_is_bitwise_identical(tmp_path, crash_step):
    cfg = _cfg(train={"ema_decay": 0.8, "grad_accum_steps": 2, "eval_every": 5, "log_every": 3})
    reference = train(cfg, tmp_path / "reference", device="cpu")

    trainer = Trainer(cfg, tmp_path / "resumed", device="cpu")
    trainer.task.fail_at_step = crash_step
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert not (tmp_path / "resumed" / "model").exists()
    latest = find_latest_checkpoint(tmp_path / "resumed")
    if crash_step < 4:  # crashed before the first checkpoint (ckpt_every: 4): start over
        assert latest is None
        resumed = train(cfg, tmp_path / "resumed", device="cpu")
    else:
        assert latest.name == f"step_{crash_step // 4 * 4:06d}"
        assert not [p for p in latest.parent.iterdir() if p.name.startswith(".")]  # no temporaries left
        resumed = train(cfg, tmp_path / "resumed", resume=True, device="cpu")

    _assert_bitwise_equal(_weights(reference.out_dir), _weights(resumed.out_dir))
    final = "checkpoints/step_000012"
    for name in ("task.safetensors", "ema.safetensors", "state.safetensors"):
        _assert_bitwise_equal(load_file(str(reference.out_dir / final / name)), load_file(str(resumed.out_dir / final / name)))
    assert _records(reference.out_dir) == _records(resumed.out_dir)


@pytest.fixture
def default_sigint():
    """Python's default Ctrl-C handler during the test (a shell starts background jobs with SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path, default_sigint):
    cfg = _cfg(train={"ckpt_every": 0, "ema_decay": 0.9})
    reference = train(cfg, tmp_path / "reference", device="cpu")
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    trainer.task.sigint_at_step = 6
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [7]  # step 6 (0-based) completed, then saved
    resumed = train(cfg, tmp_path / "run", resume=True, device="cpu")
    _assert_bitwise_equal(_weights(reference.out_dir), _weights(resumed.out_dir))


def test_interrupt_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    cfg = _cfg()
    real = ckpt_mod.save_nested_state
    calls = {"n": 0}

    def second_write_interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-write")
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_nested_state", second_write_interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", device="cpu")
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000004"]
    monkeypatch.setattr(ckpt_mod, "save_nested_state", real)
    resumed = train(cfg, tmp_path / "run", resume=True, device="cpu")
    reference = train(cfg, tmp_path / "reference", device="cpu")
    _assert_bitwise_equal(_weights(reference.out_dir), _weights(resumed.out_dir))


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    base = {"task": {"noise": 0.0, "dropout": 0.0}, "optim": {"grad_clip": 0.5}}
    big = train(_cfg(data={"batch_size": 16}, train={"steps": 6}, **base), tmp_path / "big", device="cpu")
    acc = train(_cfg(data={"batch_size": 8}, train={"steps": 6, "grad_accum_steps": 2}, **base), tmp_path / "acc", device="cpu")
    a, b = _weights(big.out_dir), _weights(acc.out_dir)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_bf16_mixed_precision_on_cpu(tmp_path):
    result = train(_cfg(train={"steps": 4, "mixed_precision": "bf16"}), tmp_path / "run", device="cpu")
    weights = _weights(result.out_dir)
    assert all(t.dtype == torch.float32 for t in weights.values())
    assert torch.isfinite(torch.tensor(result.final_metrics["loss"]))


def test_errors_name_the_problem(tmp_path, write_config):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(_cfg(), tmp_path / "empty", resume=True, device="cpu")
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        train(_cfg(train={"mixed_precision": "fp16"}), tmp_path / "fp16", device="cpu")
    with pytest.raises(ConfigError, match="unknown task 'task.name: nope'.*run.yaml"):
        train(_cfg(task={"name": "nope"}), tmp_path / "nope", device="cpu", source="run.yaml")
    with pytest.raises(ConfigError, match="task.hiden"):
        train(_cfg(task={"hiden": 3}), tmp_path / "typo", device="cpu")
    with pytest.raises(ConfigError, match="no run folder"):
        train(_cfg())
    with pytest.raises(ConfigError, match="imports: cannot import"):
        train(run_config_from_dict({**tiny_run_dict(), "imports": ["no_such_module_xyz"]}), tmp_path / "imp", device="cpu")
    train(_cfg(train={"steps": 2}), tmp_path / "done", device="cpu")
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume"):
        train(_cfg(train={"steps": 2}), tmp_path / "done", device="cpu")
    with pytest.raises(Exception, match="fewer than one batch"):
        train(_cfg(data={"limit": 10}), tmp_path / "small", device="cpu")


def test_resume_of_finished_run_only_reexports(tmp_path):
    cfg = _cfg(train={"steps": 4})
    first = train(cfg, tmp_path / "run", device="cpu")
    before = _weights(first.out_dir)
    again = train(cfg, tmp_path / "run", resume=True, device="cpu")
    _assert_bitwise_equal(before, _weights(again.out_dir))
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [4]
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["steps"] == 4


def test_worker_processes_do_not_change_the_data_order(tmp_path):
    cfg0 = _cfg(train={"steps": 6})
    cfg2 = _cfg(data={"num_workers": 2}, train={"steps": 6})
    _assert_bitwise_equal(_weights(train(cfg0, tmp_path / "w0", device="cpu").out_dir),
                          _weights(train(cfg2, tmp_path / "w2", device="cpu").out_dir))


def test_tensorboard_receives_scalars_when_available(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            calls.append(("init", log_dir, purge_step))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(_cfg(train={"steps": 4, "eval_every": 4}), tmp_path / "run", device="cpu")
    assert calls[0] == ("init", str(tmp_path / "run" / "tensorboard"), None) and calls[-1] == ("close",)
    tags = {c[0] for c in calls[1:-1]}
    assert {"train/loss", "train/lr", "train/acc", "eval/val_acc"} <= tags
    assert all(c[2] == 4 for c in calls[1:-1])


def test_init_from_starts_from_saved_weights_and_refuses_mismatches(tmp_path, caplog):
    first = train(_cfg(), tmp_path / "first", device="cpu")
    trained = _weights(first.out_dir)
    # one step at a negligible lr keeps the initial weights: they must be the saved ones, not a fresh init
    still = {"lr": 1e-9, "warmup_steps": 0, "weight_decay": 0.0}
    with caplog.at_level("INFO", logger="arforge.train.trainer"):
        second = train(_cfg(optim=still, train={"steps": 1, "init_from": str(first.out_dir)}), tmp_path / "second", device="cpu")
    for key, value in _weights(second.out_dir).items():
        torch.testing.assert_close(value, trained[key], atol=1e-6, rtol=0)
    fresh = train(_cfg(optim=still, train={"steps": 1}), tmp_path / "fresh", device="cpu")
    assert not torch.allclose(_weights(fresh.out_dir)["net.0.weight"], trained["net.0.weight"], atol=1e-3)
    assert "initialised TinyClassifier" in caplog.text
    # a model with other shapes is refused, naming the keys
    wider = train(_cfg(task={"hidden": 24}), tmp_path / "wider", device="cpu")
    with pytest.raises(CheckpointError, match="net.0.weight"):
        train(_cfg(train={"init_from": str(wider.exported_model_dir)}), tmp_path / "third", device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        train(_cfg(train={"init_from": str(tmp_path / "nowhere")}), tmp_path / "fourth", device="cpu")
