"""Shared pytest fixtures: tiny models and paths to the golden interop fixtures."""

from __future__ import annotations

import os
from pathlib import Path

# The kernel tests run the Triton code on CPU through Triton's interpreter. Triton decides at import
# time (of triton.language) whether it interprets, and other tests may import it indirectly (torch's
# compiler stack), so the switch is set here, before any test module is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

#: golden outputs of the reference implementations (provenance: fixtures/interop/MANIFEST.md)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "interop"


@pytest.fixture(scope="session")
def interop_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"golden fixtures not found at {FIXTURES} (they are part of the repository: restore tests/fixtures/interop)")
    return FIXTURES


@pytest.fixture(scope="session")
def interop_fixture(interop_dir):
    """Reader of one golden fixture file: ``(constructor config dict, reference weights, io tensors)``."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    def read(name: str) -> tuple[dict, dict, dict]:
        path = interop_dir / name
        with safe_open(str(path), "pt") as f:
            config = json.loads(f.metadata()["config"])
        tensors = load_file(str(path))
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        io = {k[len("io."):]: v for k, v in tensors.items() if k.startswith("io.")}
        return config, weights, io

    return read


@pytest.fixture(scope="session")
def llamagen_c2i(interop_dir):
    """The LlamaGen c2i GPT golden fixture loaded through ``arforge.interop.load_gpt`` (strict)."""
    import json

    from safetensors import safe_open

    from arforge.interop import load_gpt

    path = interop_dir / "llamagen_gpt_c2i.safetensors"
    with safe_open(str(path), "pt") as f:
        args = json.loads(f.metadata()["config"])["ModelArgs"]
    side = int(args["block_size"] ** 0.5)
    return load_gpt(path, prefix="model.", grid_size=(side, side), n_head=args["n_head"]).eval()


@pytest.fixture
def tiny_raster():
    """Builder of a tiny random class-conditional raster generator (4 classes, null class for CFG)."""
    from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator

    def build(vocab: int = 16, grid: tuple[int, int] = (3, 4), std: float = 0.5, seed: int = 0, layers: int = 2):
        torch.manual_seed(seed)
        gen = RasterGenerator(RasterConfig(vocab_size=vocab, grid_size=grid, num_classes=4, class_dropout_prob=0.1,
                                           backbone=BackboneConfig(dim=32, n_layer=layers, n_head=2, multiple_of=16)))
        torch.nn.init.normal_(gen.output.weight, std=std)
        return gen.eval()

    return build


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
