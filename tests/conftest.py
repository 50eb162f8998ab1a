"""Shared pytest fixtures: tiny models and paths to the golden interop fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "interop"


@pytest.fixture(scope="session")
def interop_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"golden fixtures not found at {FIXTURES} (expected ../shared beside the checkout)")
    return FIXTURES


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield
