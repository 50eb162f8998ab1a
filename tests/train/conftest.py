"""Fixtures for the trainer tests; the tiny task itself lives in ``tiny_train_task.py`` (registered on import)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import tiny_train_task  # noqa: F401  (registers the test task)


@pytest.fixture(autouse=True)
def _one_thread(one_intraop_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""


@pytest.fixture
def write_config(tmp_path: Path):
    """``write_config(cfg_dict, name="run.yaml") -> Path`` of a YAML file under ``tmp_path``."""

    def write(cfg: dict, name: str = "run.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return write
