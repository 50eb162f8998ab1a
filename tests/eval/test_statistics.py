"""Streaming statistics, the Fréchet distance, KID, IS and precision/recall against reference formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arforge.eval.frechet import frechet_distance
from arforge.eval.inception_score import inception_score
from arforge.eval.kid import kernel_inception_distance
from arforge.eval.precision_recall import precision_recall
from arforge.eval.stats import GaussianStats, RunningStats, is_stats_file, load_stats, save_stats


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    g = np.random.default_rng(seed)
    mix = g.standard_normal((d, d)) / np.sqrt(d)
    return (np.abs(g.standard_normal((n, d)) @ mix + shift)).astype(np.float32)  # non-negative like pool3


def _fid_eigvals(mu1, s1, mu2, s2) -> float:
    """TTUR / torch-fidelity formula."""
    diff = mu1 - mu2
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(np.complex128)).real.sum()
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr)


def test_running_stats_equal_numpy_cov_over_uneven_batches():
    x = _features(103, 16, 0) * 1000 + 5000  # large offset: a naive sum-of-squares would lose digits
    acc = RunningStats(16)
    for chunk in np.split(x, [1, 7, 40, 41, 90]):
        acc.update(torch.from_numpy(chunk))
    st = acc.finalize()
    assert st.num_images == 103
    np.testing.assert_allclose(st.mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        RunningStats(3).finalize()
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        acc.update(np.zeros((2, 15)))


@pytest.mark.parametrize("n", [40, 300])  # rank-deficient and full-rank covariances (d = 64)
def test_frechet_distance_matches_the_reference_formula(n):
    a, b = _features(n, 64, 1), _features(n, 64, 2, shift=0.3)
    sa, sb = GaussianStats.from_features(a), GaussianStats.from_features(b)
    ours = frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)
    ref = _fid_eigvals(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert ours > 1 and abs(ours / ref - 1) < 1e-7


def test_frechet_distance_is_symmetric_and_zero_on_itself():
    a, b = _features(50, 2048, 3), _features(60, 2048, 4, shift=0.1)
    sa, sb = GaussianStats.from_features(a), GaussianStats.from_features(b)
    assert frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma) == frechet_distance(sb.mu, sb.sigma, sa.mu, sa.sigma)
    assert abs(frechet_distance(sa.mu, sa.sigma, sa.mu, sa.sigma)) < 1e-6
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(sa.mu, sa.sigma, sa.mu[:10], sa.sigma[:10, :10])


def test_stats_file_roundtrip_and_adm_format(tmp_path, caplog):
    st = GaussianStats.from_features(_features(20, 8, 5))
    sp = GaussianStats.from_features(_features(20, 6, 6))
    path = save_stats(tmp_path / "ref.npz", {"pool3": st, "spatial": sp}, "tf-inception-2015-12-05/tf")
    assert is_stats_file(path)
    loaded = load_stats(path, expected_features="tf-inception-2015-12-05/tf")
    np.testing.assert_array_equal(loaded["pool3"].sigma, st.sigma)
    np.testing.assert_array_equal(loaded["spatial"].mu, sp.mu)
    assert loaded["pool3"].num_images == 20
    with caplog.at_level("WARNING"):
        load_stats(path, expected_features="tf-inception-2015-12-05/pytorch-fid")
    assert "not comparable" in caplog.text
    # an ADM reference batch: images plus float32 mu/sigma (and mu_s/sigma_s), no arforge metadata
    adm = tmp_path / "VIRTUAL_ref.npz"
    np.savez(adm, arr_0=np.zeros((2, 4, 4, 3), np.uint8), mu=st.mu.astype(np.float32), sigma=st.sigma.astype(np.float32))
    assert is_stats_file(adm) and set(load_stats(adm)) == {"pool3"}
    np.savez(tmp_path / "images.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    assert not is_stats_file(tmp_path / "images.npz")
    with pytest.raises(ValueError, match="holds no statistics"):
        load_stats(tmp_path / "images.npz")
    with pytest.raises(FileNotFoundError):
        load_stats(tmp_path / "missing.npz")


def test_kid_matches_torch_fidelity():
    metric_kid = pytest.importorskip("torch_fidelity.metric_kid")
    a, b = _features(120, 64, 7), _features(100, 64, 8, shift=0.2)
    ours = kernel_inception_distance(a, b, subsets=20, subset_size=50, seed=2020)
    ref = metric_kid.kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=20,
                                            kid_subset_size=50, verbose=False, rng_seed=2020)
    assert ours["kid"] > 0
    assert abs(ours["kid"] / ref["kernel_inception_distance_mean"] - 1) < 1e-4
    assert abs(ours["kid_std"] / ref["kernel_inception_distance_std"] - 1) < 1e-3
    clamped = kernel_inception_distance(a, b, subsets=2, subset_size=1000)
    assert clamped["kid_subset_size"] == 100


def test_inception_score_matches_torch_fidelity():
    metric_isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = torch.from_numpy(_features(200, 1008, 9) * 20 - 10)
    ours = inception_score(logits.numpy(), splits=10)
    ref = metric_isc.isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert ours["inception_score"] > 1.5
    assert abs(ours["inception_score"] / ref["inception_score_mean"] - 1) < 1e-9
    assert abs(ours["inception_score_std"] - ref["inception_score_std"]) < 1e-9
    uniform = inception_score(np.zeros((20, 1008)), splits=2)
    assert abs(uniform["inception_score"] - 1.0) < 1e-12


def test_precision_recall_matches_torch_fidelity():
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc")
    real, fake = _features(150, 32, 10), _features(130, 32, 11, shift=0.4)
    ours = precision_recall(real, fake, k=3, block=64)
    p, r = metric_prc.calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), 3, 10000)
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1
    assert ours == {"precision": pytest.approx(p, abs=1e-6), "recall": pytest.approx(r, abs=1e-6)}  # theirs: float32 means
    same = precision_recall(real, real)
    assert same == {"precision": 1.0, "recall": 1.0}
