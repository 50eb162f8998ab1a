"""Fixtures for the trainer tests; the tiny task itself lives in ``tiny_train_task.py`` (registered on import)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

# pytest runs with --import-mode=importlib (test files may share basenames across folders), which
# does not put test folders on sys.path; the trainer tests import their helper module from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_train_task  # noqa: E402, F401  (registers the test task)


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
