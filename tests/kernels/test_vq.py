"""Nearest-code search: the Triton kernel (interpreted) and the blocked reference give argmin's indices,
for plain and l2-normalised codebooks, and the reference never holds more than its distance slice."""

import pytest
import torch
import torch.nn.functional as F

from arforge.kernels.vq import nearest_code


def _full_argmin(z, e):
    return (z.square().sum(1, keepdim=True) + e.square().sum(1) - 2 * z @ e.t()).argmin(1)


@pytest.mark.parametrize("l2", [False, True])
@pytest.mark.parametrize("N, K, D", [(70, 100, 8), (5, 33, 3), (64, 16, 20)])
def test_both_backends_agree_with_the_full_argmin(N, K, D, l2):
    g = torch.Generator().manual_seed(N + K)
    z, e = torch.randn(N, D, generator=g), torch.randn(K, D, generator=g)
    if l2:
        z, e = F.normalize(z, dim=-1), F.normalize(e, dim=-1)
    want = _full_argmin(z, e)
    assert torch.equal(nearest_code(z, e, backend="reference"), want)
    assert torch.equal(nearest_code(z, e, backend="reference", max_block_bytes=4 * K * 3), want)  # 3 rows a block
    assert torch.equal(nearest_code(z, e, backend="triton"), want)


def test_ties_resolve_to_the_lowest_index_and_shapes_are_checked():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    z = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert nearest_code(z, e, backend="reference").tolist() == [0, 1]
    assert nearest_code(z, e, backend="triton").tolist() == [0, 1]
    with pytest.raises(ValueError, match="same D"):
        nearest_code(z, torch.zeros(4, 3))


def test_the_reference_holds_one_distance_slice_at_a_time(monkeypatch):
    """4096 latents x 4096 codes (the full matrix: 64 MB) with a 2 MB budget: 128-row slices."""
    import arforge.kernels.vq as vq

    shapes = []
    real = vq.block_distances

    def spy(z, e, ee):
        out = real(z, e, ee)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(vq, "block_distances", spy)
    g = torch.Generator().manual_seed(0)
    z, e = torch.randn(4096, 8, generator=g), torch.randn(4096, 8, generator=g)
    codes = nearest_code(z, e, backend="reference", max_block_bytes=2 * 2**20)
    assert torch.equal(codes, _full_argmin(z, e))
    assert set(shapes) == {(128, 4096)} and len(shapes) == 32
