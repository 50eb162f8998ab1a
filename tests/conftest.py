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


@pytest.fixture
def one_intraop_thread():
    """Run a test on one intra-op thread and restore the previous setting afterwards.

    On the shared 2-core machine, two OpenMP threads competing with other processes made tiny
    models about 8x slower than one thread (measured); sub-folders opt in through an autouse fixture.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_mar():
    """Builder of a tiny random MAR generator (3x3 grid of 2-channel tokens, 3 classes, 10-step head)."""
    from arforge.generators.mar import MARConfig, MARGenerator

    def build(**overrides) -> MARGenerator:
        torch.manual_seed(0)
        cfg = dict(latent_channels=2, grid_size=(3, 3), num_classes=3, buffer_size=2, encoder_embed_dim=32,
                   encoder_depth=1, encoder_num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
                   attn_dropout=0.0, proj_dropout=0.0, diffloss_w=32, diffloss_d=1, num_sampling_steps=10)
        cfg.update(overrides)
        return MARGenerator(MARConfig(**cfg))

    return build
