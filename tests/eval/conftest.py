"""Fixtures for the evaluation tests: an isolated arforge cache and torch hub dir, shared Inception extractors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arforge.data.mnist import mnist_uint8


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory):
    """Converted weights, classifiers and statistics go to a per-session folder; the hub dir starts empty."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARFORGE_CACHE", str(tmp_path_factory.mktemp("arforge_cache")))
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


@pytest.fixture(scope="session")
def tf_extractor():
    from arforge.eval.features import build_feature_extractor

    return build_feature_extractor("tf", ("pool3", "spatial"), device="cpu")


@pytest.fixture(scope="session")
def mnist_small() -> tuple[np.ndarray, np.ndarray]:
    """8 train and 8 validation digits, uint8 (8, 32, 32, 3) each (different images)."""
    train, _ = mnist_uint8("train")
    val, _ = mnist_uint8("val")
    idx = np.random.default_rng(0).permutation(len(train))[:8]
    return np.ascontiguousarray(train[idx]), np.ascontiguousarray(val[::61][:8])


@pytest.fixture()
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def full_weights_file(tmp_path_factory):
    """The bundled weights in pytorch-fid/torch-fidelity layout with a seeded random classifier.

    No wheel ships the real 1008-way classifier; a random one exercises the same code paths (the
    comparison with torch-fidelity is about computing the same quantity from the same weights).
    """
    from arforge.eval.inception_weights import export_reference_layout

    g = torch.Generator().manual_seed(1234)
    fc_w = torch.randn(1008, 2048, generator=g) * 0.05
    fc_b = torch.randn(1008, generator=g)
    return export_reference_layout(tmp_path_factory.mktemp("weights") / "full_inception.pth", fc_w, fc_b)


class _UInt8Dataset(torch.utils.data.Dataset):
    """uint8 (N, H, W, 3) images as torch-fidelity inputs: uint8 (3, H, W) tensors."""

    def __init__(self, images_NHWC: np.ndarray):
        self.x = torch.from_numpy(np.ascontiguousarray(images_NHWC)).permute(0, 3, 1, 2).contiguous()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def _pytorch_fid_reference(images_a: np.ndarray, images_b: np.ndarray, weights_file, torch_home, monkeypatch,
                           own_formula: bool) -> float:
    """FID as pytorch-fid computes it (its InceptionV3, fed ``weights_file``, on ``ToTensor()``-style floats).

    ``own_formula``: use pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``, ~20 s at 2048-d on
    two cores); otherwise arforge's Fréchet distance on pytorch-fid's features (same value, checked
    separately against the reference formula).
    """
    import shutil

    from pytorch_fid.fid_score import calculate_frechet_distance
    from pytorch_fid.inception import InceptionV3

    from arforge.eval.frechet import frechet_distance

    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights_file, checkpoints / "pt_inception-2015-12-05-6726825d.pth")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True).eval()

    def activations(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return torch.cat([model(x[i: i + 25])[0].flatten(1) for i in range(0, len(x), 25)]).numpy()

    fa, fb = activations(images_a).astype(np.float64), activations(images_b).astype(np.float64)
    stats = (fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
    return float(calculate_frechet_distance(*stats) if own_formula else frechet_distance(*stats))


@pytest.fixture(scope="session")
def uint8_dataset():
    """Factory: uint8 (N, H, W, 3) array -> a torch-fidelity input dataset."""
    return _UInt8Dataset


@pytest.fixture()
def pytorch_fid_score(tmp_path, monkeypatch):
    """``fn(images_a, images_b, weights_file) -> FID`` computed by pytorch-fid itself."""
    pytest.importorskip("pytorch_fid")

    def run(images_a: np.ndarray, images_b: np.ndarray, weights_file, own_formula: bool = False) -> float:
        return _pytorch_fid_reference(images_a, images_b, weights_file, tmp_path / "torch_home", monkeypatch,
                                      own_formula)

    return run


@pytest.fixture(autouse=True)
def _arforge_logs_reach_caplog(monkeypatch):
    """``arforge.cli.main`` installs its own handler and stops propagation; tests read logs through caplog."""
    import logging

    monkeypatch.setattr(logging.getLogger("arforge"), "propagate", True)
