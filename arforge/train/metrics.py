"""Metric records: ``out_dir/metrics.jsonl`` (one JSON object per line) and optional TensorBoard.

Training records look like ``{"kind": "train", "step": 100, "lr": ..., "loss": ..., <task metrics>,
"time": <seconds since the run started>}``; evaluation records ``{"kind": "eval", "step": 100,
<evaluate() metrics>, "time": ...}``. TensorBoard scalars (``<kind>/<key>``) are written to
``out_dir/tensorboard`` when ``torch.utils.tensorboard`` and the ``tensorboard`` package import.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

from arforge.utils.io import atomic_write_text

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file (a trailing partial line, from a killed writer, is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("ignoring an unreadable line in %s", path)
    return records


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Appends records to ``out_dir/metrics.jsonl`` (and TensorBoard when available).

    ``resume_step``: when resuming, records with ``step > resume_step`` (written after the checkpoint
    by the interrupted run) are dropped first, so the file reads as one uninterrupted run. Without
    it the file starts empty. ``enabled=False`` (non-main processes) makes every call a no-op.
    """

    def __init__(self, out_dir: str | Path, *, resume_step: int | None = None, enabled: bool = True, tensorboard: bool = True):
        self.path = Path(out_dir) / METRICS_FILE
        self.enabled = enabled
        self._writer = None
        if not enabled:
            return
        kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= resume_step] if resume_step is not None else []
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"), purge_step=resume_step)
            except ImportError:
                log.debug("tensorboard is not installed; metrics go to %s only", self.path)

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one record (must hold ``step``; numbers are also sent to TensorBoard as ``<kind>/<key>``)."""
        if not self.enabled:
            return
        clean = {k: _jsonable(v) for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        if self._writer is not None:
            kind = record.get("kind", "train")
            for key, value in record.items():
                if key not in ("step", "kind") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{kind}/{key}", value, int(record["step"]))

    def close(self) -> None:
        """Close the file (and the TensorBoard writer)."""
        if not self.enabled:
            return
        self._file.close()
        if self._writer is not None:
            self._writer.close()
