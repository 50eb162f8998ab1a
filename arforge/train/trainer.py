"""The generic trainer: any registered :class:`~arforge.train.task.TrainTask`, one YAML config, one run folder.

``Trainer(run_config, out_dir).fit()`` (or :func:`train`) builds the data and the task, runs AdamW
with the configured warm-up/decay schedule, gradient accumulation, clipping, mixed precision and
EMA through ``accelerate`` (single-process CPU up to multi-GPU, same code), and writes::

    out_dir/
      config.yaml          the resolved run config
      metrics.jsonl        training and evaluation records (see arforge.train.metrics)
      checkpoints/         atomic step folders + latest pointer (see arforge.train.checkpoint)
      model/               task.export_model() (its EMA copy when EMA is on) via save_pretrained
      summary.json         final metrics, steps, wall time
      tokens_*.safetensors token caches built for data.name: tokens with data.tokenizer + data.source

Exact resume: the data order is a pure function of ``(train.seed, micro-batch index)``
(:class:`~arforge.data.batching.EpochBatchSampler`) and a checkpoint holds the task, optimizer,
scheduler, loss-scaler, EMA and every RNG state, so ``resume=True`` ends with weights bitwise
identical to an uninterrupted single-process run on the same machine (GPU runs additionally need
deterministic kernels).

Interrupts: a first Ctrl-C (SIGINT) lets the current step finish, saves a checkpoint atomically and
raises ``KeyboardInterrupt``; a second one, or any other exception, stops at once. Nothing
half-written is ever left behind: checkpoints, ``model/`` and ``config.yaml`` are written atomically.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import logging
import math
import pkgutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from arforge.auto import load_pretrained
from arforge.config import ConfigError, to_dict
from arforge.data.batching import EpochBatchSampler
from arforge.data.registry import build_dataset, data_info
from arforge.plugins import import_plugin
from arforge.pretrained import CheckpointError, PretrainedMixin, load_state_dict_strict, load_weights_into
from arforge.utils.io import atomic_write_text
from arforge.train.checkpoint import (
    capture_rng_state,
    clean_stale_temporaries,
    find_latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from arforge.train.ema import EMA
from arforge.train.metrics import METRICS_FILE, MetricsLogger, read_metrics
from arforge.train.optim import build_optimizer
from arforge.train.schedule import LRSchedule, build_scheduler
from arforge.train.schema import RunConfig
from arforge.train.task import TASKS, TrainTask
from arforge.utils.device import seed_everything

log = logging.getLogger(__name__)

MODEL_DIR = "model"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"


def _load_tokenizer(model_dir: Path) -> nn.Module:
    """The tokenizer a token/latent cache is built with (``data.tokenizer``)."""
    return load_pretrained(model_dir, kind="tokenizer")


@dataclass
class TrainResult:
    """What a finished run produced: its folder, the exported model folder and the last logged metrics."""

    out_dir: Path
    exported_model_dir: Path
    final_metrics: dict[str, float]


class _LossForward(nn.Module):
    """Calls ``task.training_loss`` through ``forward`` so accelerate's wrappers apply (autocast, DDP sync)."""

    def __init__(self, task: TrainTask):
        super().__init__()
        self.task = task

    def forward(self, batch: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return self.task.training_loss(batch, step)


def import_modules(names: list[str], source: str | None = None) -> None:
    """Import the plug-ins listed in ``imports:`` (module names or ``.py`` files; they register custom
    tasks, datasets, orders, ...: :func:`arforge.plugins.import_plugin`)."""
    for name in names:
        try:
            import_plugin(name)
        except ConfigError as err:
            raise ConfigError(f"imports: {err}{' (' + source + ')' if source else ''}") from err


def resolve_task_class(name: str, source: str | None = None) -> type[TrainTask]:
    """The registered task class ``name``, importing the built-in task modules on first use."""
    if name not in TASKS:
        import arforge.train.tasks as builtin

        modules = [m.name for m in pkgutil.iter_modules(builtin.__path__)]
        for module in sorted(modules, key=lambda m: m != name):
            if name in TASKS:
                break
            try:
                importlib.import_module(f"arforge.train.tasks.{module}")
            except ImportError as err:
                log.warning("built-in task module arforge.train.tasks.%s could not be imported: %s", module, err)
    if name not in TASKS:
        raise ConfigError(
            f"unknown task 'task.name: {name}'{' in ' + source if source else ''}; registered tasks: "
            f"{', '.join(TASKS.names()) or '(none)'} (custom tasks: list their module under imports:)"
        )
    return TASKS.get(name)


def make_accelerator(mixed_precision: str, device: str = "auto"):
    """An ``accelerate.Accelerator`` for ``device`` (``auto``/``cpu``/``cuda``) with ``mixed_precision``.

    Raises :class:`ConfigError` for ``cuda`` without CUDA and for ``fp16`` on a CPU (fp16 autocast
    needs a GPU; use ``bf16`` there). In a single process an earlier accelerate state with other
    settings (an earlier run in the same Python session) is reset so both runs can coexist.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: use auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine; use --device cpu (or auto)")
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available() and not _mps_available())
    if mixed_precision == "fp16" and on_cpu:
        raise ConfigError("train.mixed_precision: fp16 needs a GPU; use bf16 (or no) on a CPU")
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed and PartialState._shared_state:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision, cpu=device == "cpu")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config dicts (``"train.steps: 100 -> 200"``)."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten("", dict(old), a)
    _flatten("", dict(new), b)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class Trainer:
    """Trains ``run_config``'s task into ``out_dir``; :meth:`fit` runs it and returns a :class:`TrainResult`.

    ``resume``: continue from the newest checkpoint in ``out_dir`` (raises :class:`CheckpointError`
    if there is none); without it, a folder that already holds checkpoints is refused
    (:class:`ConfigError`) rather than overwritten. ``device``: ``auto``, ``cpu`` or ``cuda``.
    ``source``: the config file name, used in error messages.
    """

    def __init__(
        self,
        run_config: RunConfig,
        out_dir: str | Path,
        resume: bool = False,
        *,
        device: str = "auto",
        source: str | None = None,
    ):
        self.cfg = run_config
        self.out_dir = Path(out_dir)
        self.source = source
        tcfg = run_config.train
        import_modules(run_config.imports, source)
        task_cls = resolve_task_class(run_config.task_name, source)

        latest = find_latest_checkpoint(self.out_dir)
        if resume and latest is None:
            raise CheckpointError(
                f"--resume: no checkpoint in {self.out_dir / 'checkpoints'}; start without --resume (or pick the run folder with --out)"
            )
        if not resume and latest is not None:
            raise ConfigError(
                f"{self.out_dir} already holds checkpoints ({latest.name}); pass --resume to continue that run, "
                "or choose another folder with --out"
            )

        self.accelerator = make_accelerator(tcfg.mixed_precision, device)
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process

        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            clean_stale_temporaries(self.out_dir)
        with self.accelerator.main_process_first():
            self.train_set = build_dataset(run_config.data, run_config.data.split, cache_dir=self.out_dir, device=self.device,
                                           load_tokenizer=_load_tokenizer)
            self.val_set: Dataset | None = None
            if tcfg.eval_every > 0 and run_config.data.val_split:
                self.val_set = build_dataset(run_config.data, run_config.data.val_split, cache_dir=self.out_dir, device=self.device,
                                             load_tokenizer=_load_tokenizer)
        self.data_info = data_info(self.train_set)

        seed_everything(tcfg.seed)  # after the data, so building a token cache never changes the initial weights
        task = task_cls.from_config(run_config.task_options, self.data_info, source)
        if not isinstance(task, TrainTask):
            raise TypeError(f"{task_cls.__name__}.from_config returned {type(task).__name__}, not a TrainTask")
        if tcfg.init_from and not resume:
            changed = load_weights_into(task.export_model(), tcfg.init_from)
            log.info("initialised %s from %s%s", type(task.export_model()).__name__, tcfg.init_from,
                     "" if not changed else "; config fields that differ (saved -> this run): " +
                     ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items()))
        self.task = task.to(self.device)
        self.model = self.accelerator.prepare_model(_LossForward(self.task))
        optimizer = build_optimizer(self.task, run_config.optim)
        ocfg = run_config.optim
        self.schedule = LRSchedule(tcfg.steps, ocfg.warmup_steps, ocfg.schedule, ocfg.min_lr_ratio)
        self.scheduler = build_scheduler(optimizer, self.schedule)
        self.optimizer = self.accelerator.prepare_optimizer(optimizer)
        self.ema = EMA(self.task.export_model(), tcfg.ema_decay) if tcfg.ema_decay > 0 else None
        self.sampler = EpochBatchSampler(
            len(self.train_set), run_config.data.batch_size, tcfg.seed,
            num_replicas=self.accelerator.num_processes, rank=self.accelerator.process_index,
        )

        self.step = 0
        self.elapsed_s = 0.0
        self._window: dict[str, float] = {}
        self._stop_requested = False
        self.resumed_from: Path | None = None
        if resume:
            assert latest is not None
            self._restore(latest)
        self.num_parameters = sum(p.numel() for p in self.task.parameters())
        if self.is_main:
            atomic_write_text(self.out_dir / CONFIG_FILE, yaml.safe_dump(to_dict(run_config), sort_keys=False))
        log.info(
            "task %s: %.2fM parameters, %d training items, device %s, mixed precision %s, run folder %s",
            run_config.task_name, self.num_parameters / 1e6, len(self.train_set), self.device, tcfg.mixed_precision, self.out_dir,
        )

    # ------------------------------------------------------------------ state

    def _trainer_state(self) -> dict[str, Any]:
        scaler = self.accelerator.scaler
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"},
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": capture_rng_state(),
            "data": self.sampler.state_dict(next_batch=self.step * self.cfg.train.grad_accum_steps),
            "metrics_window": dict(self._window),
            "elapsed_s": self.elapsed_s,
            "config": to_dict(self.cfg),
        }

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current step (main process; all processes wait for it)."""
        self.accelerator.wait_for_everyone()
        path = self.out_dir / "checkpoints"
        if self.is_main:
            path = save_checkpoint(
                self.out_dir, self.step, self.task.state_dict(), self._trainer_state(),
                ema_state=self.ema.state_dict() if self.ema is not None else None,
                keep=self.cfg.train.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()
        return path

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        state = ckpt.state
        changed = config_differences(state.get("config", {}), to_dict(self.cfg))
        if changed:
            log.warning("resuming with a changed config (the result will differ from an uninterrupted run): %s", "; ".join(changed))
        saved_data = state["data"]
        current = self.sampler.state_dict(saved_data["next_batch"])
        if saved_data != current:
            log.warning("the training data or batch size changed since the checkpoint (%s -> %s): the data order will differ",
                        saved_data, current)
        load_state_dict_strict(self.task, ckpt.task_state, str(path / "task.safetensors"))
        if self.ema is not None:
            if ckpt.ema_state is None:
                log.warning("checkpoint %s has no EMA weights; the EMA restarts from the current weights", path)
            else:
                self.ema.load_state_dict(ckpt.ema_state, str(path / "ema.safetensors"))
        self.optimizer.load_state_dict(state["optimizer"])
        # the schedule itself comes from the current config (lr_lambdas None = keep it); only the counters are restored
        self.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None] * len(self.scheduler.lr_lambdas)})
        if self.accelerator.scaler is not None and state.get("scaler"):
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.step = ckpt.step
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self._window = {k: float(v) for k, v in state.get("metrics_window", {}).items()}
        restore_rng_state(state["rng"])
        self.resumed_from = path
        log.info("resuming from %s (step %d of %d)", path, self.step, self.cfg.train.steps)

    # ------------------------------------------------------------------ data

    def _to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _train_batches(self) -> Iterator[dict[str, Any]]:
        start = self.step * self.cfg.train.grad_accum_steps
        loader = DataLoader(
            self.train_set,
            batch_sampler=self.sampler.iter_from(start),
            num_workers=self.cfg.data.num_workers,
            generator=torch.Generator().manual_seed(self.cfg.train.seed),
        )
        for batch in loader:
            yield self._to_device(batch)

    def _val_batches(self) -> Iterator[dict[str, Any]]:
        assert self.val_set is not None
        loader = DataLoader(
            self.val_set, batch_size=self.cfg.data.batch_size, shuffle=False,
            num_workers=self.cfg.data.num_workers, generator=torch.Generator().manual_seed(self.cfg.train.seed),
        )
        for i, batch in enumerate(loader):
            if self.cfg.train.eval_batches and i >= self.cfg.train.eval_batches:
                break
            yield self._to_device(batch)

    # ------------------------------------------------------------------ steps

    def _train_step(self, batches: Iterator[dict[str, Any]]) -> None:
        """One optimizer step over ``grad_accum_steps`` micro-batches; accumulates metrics into the log window."""
        accum = self.cfg.train.grad_accum_steps
        self.task.train()
        for micro in range(accum):
            batch = next(batches)
            sync = self.accelerator.no_sync(self.model) if micro < accum - 1 else contextlib.nullcontext()
            with sync:
                loss, metrics = self.model(batch, self.step)
                loss_value = float(loss.detach().float())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"the training loss is {loss_value} at step {self.step}; lower optim.lr, enable optim.grad_clip "
                        "or use train.mixed_precision: no/bf16"
                    )
                self.accelerator.backward(loss / accum)
            self._accumulate({**metrics, "loss": loss_value})
        if self.cfg.optim.grad_clip > 0:
            grad_norm = self.accelerator.clip_grad_norm_(self.task.parameters(), self.cfg.optim.grad_clip)
            self._accumulate({"grad_norm": float(grad_norm)})
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        self.task.on_step_end(self.step)

    def _accumulate(self, metrics: Mapping[str, float]) -> None:
        """Sum metrics over the log window; ``count:<key>`` entries hold how many values each sum has."""
        for key, value in metrics.items():
            self._window[key] = self._window.get(key, 0.0) + float(value)
            self._window[f"count:{key}"] = self._window.get(f"count:{key}", 0.0) + 1.0

    def _flush_window(self) -> dict[str, float]:
        means = {k: v / self._window[f"count:{k}"] for k, v in self._window.items() if not k.startswith("count:")}
        self._window = {}
        return means

    def evaluate(self) -> dict[str, float]:
        """``task.evaluate`` over the validation batches (no grad, autocast as configured)."""
        if self.val_set is None:
            return {}
        self.task.eval()
        try:
            with torch.no_grad(), self.accelerator.autocast():
                metrics = self.task.evaluate(self._val_batches())
        finally:
            self.task.train()
        return {k: float(v) for k, v in metrics.items()}

    # ------------------------------------------------------------------ interrupts

    @contextlib.contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """First SIGINT: finish the step, checkpoint, stop. Installed only in a single process's main thread."""
        if (
            threading.current_thread() is not threading.main_thread()
            or self.accelerator.num_processes > 1
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return

        def request_stop(signum, frame):
            self._stop_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
            log.warning("interrupt: finishing step %d and saving a checkpoint (press Ctrl-C again to stop at once)", self.step + 1)

        signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    # ------------------------------------------------------------------ main loop

    def fit(self) -> TrainResult:
        """Train to ``train.steps``, then export the model. Returns the :class:`TrainResult`."""
        tcfg = self.cfg.train
        metrics_log = MetricsLogger(self.out_dir, resume_step=self.step if self.resumed_from else None, enabled=self.is_main)
        start_time = time.perf_counter() - self.elapsed_s
        window_start, window_steps = time.perf_counter(), 0
        bar = tqdm(total=tcfg.steps, initial=self.step, desc="train", unit="step", disable=None if self.is_main else True,
                   dynamic_ncols=True)
        batches = self._train_batches()
        try:
            with self._graceful_interrupt():
                while self.step < tcfg.steps:
                    self._train_step(batches)
                    window_steps += 1
                    self.elapsed_s = time.perf_counter() - start_time
                    bar.update(1)
                    last = self.step == tcfg.steps
                    if self.step % tcfg.log_every == 0 or last:
                        now = time.perf_counter()
                        lr = self.cfg.optim.lr * self.schedule(self.step - 1)
                        record = {"kind": "train", "step": self.step, "lr": lr, **self._flush_window(),
                                  "time": round(self.elapsed_s, 3), "sec_per_step": (now - window_start) / max(window_steps, 1)}
                        window_start, window_steps = now, 0
                        metrics_log.log(record)
                        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                        if bar.disable:
                            log.info("step %d/%d  loss %.4f  lr %.3e", self.step, tcfg.steps, record["loss"], record["lr"])
                    if tcfg.eval_every and (self.step % tcfg.eval_every == 0 or last) and self.val_set is not None:
                        eval_metrics = self.evaluate()
                        metrics_log.log({"kind": "eval", "step": self.step, **eval_metrics, "time": round(self.elapsed_s, 3)})
                        log.info("step %d eval: %s", self.step, ", ".join(f"{k} {v:.4g}" for k, v in eval_metrics.items()))
                    saved = False
                    if (tcfg.ckpt_every and self.step % tcfg.ckpt_every == 0) or last:
                        self.save_checkpoint()
                        saved = True
                    if self._stop_requested and not last:
                        if not saved:
                            self.save_checkpoint()
                        raise KeyboardInterrupt(f"training interrupted at step {self.step}; continue with --resume")
        except KeyboardInterrupt:
            log.warning("training stopped at step %d; the newest complete checkpoint is %s", self.step,
                        find_latest_checkpoint(self.out_dir))
            raise
        finally:
            batches.close()  # shuts down DataLoader workers
            bar.close()
            metrics_log.close()
        return self._finish()

    def export_model(self) -> nn.Module:
        """The model to publish: ``task.export_model()``, or a copy holding the EMA weights when EMA is on."""
        model = self.task.export_model()
        if self.ema is not None:
            model = copy.deepcopy(model)
            self.ema.copy_to(model)
        if not isinstance(model, PretrainedMixin):
            raise TypeError(f"{type(self.task).__name__}.export_model() returned {type(model).__name__}, which has no save_pretrained")
        return model

    def _finish(self) -> TrainResult:
        model_dir = self.out_dir / MODEL_DIR
        records = read_metrics(self.out_dir / METRICS_FILE) if self.is_main else []
        final: dict[str, float] = {}
        for kind in ("train", "eval"):
            last = [r for r in records if r.get("kind") == kind]
            if last:
                final.update({k: v for k, v in last[-1].items() if k not in ("kind", "step", "time")})
        self.accelerator.wait_for_everyone()
        if self.is_main:
            self.export_model().save_pretrained(model_dir)
            summary = {
                "task": self.cfg.task_name, "steps": self.step, "wall_time_s": round(self.elapsed_s, 3),
                "num_parameters": self.num_parameters, "device": str(self.device),
                "mixed_precision": self.cfg.train.mixed_precision, "ema": self.ema is not None,
                "exported_model": MODEL_DIR, "final_metrics": final,
            }
            atomic_write_text(self.out_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
            log.info("exported %s to %s", type(self.task.export_model()).__name__, model_dir)
        self.accelerator.wait_for_everyone()
        return TrainResult(out_dir=self.out_dir, exported_model_dir=model_dir, final_metrics=final)


def train(
    run_config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    device: str = "auto",
    source: str | None = None,
) -> TrainResult:
    """Train ``run_config`` into ``out_dir`` (default ``train.out_dir``) and return the :class:`TrainResult`."""
    out = out_dir if out_dir is not None else run_config.train.out_dir
    if out is None:
        where = f" in {source}" if source else ""
        raise ConfigError(f"no run folder: pass out_dir (arforge train --out DIR) or set train.out_dir{where}")
    return Trainer(run_config, out, resume=resume, device=device, source=source).fit()
