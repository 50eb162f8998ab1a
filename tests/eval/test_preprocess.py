"""Preprocessing protocols: TF1 bilinear resize (bit-exact vs torch-fidelity) and pytorch-fid's resize."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from arforge.eval.preprocess import get_preprocess, preprocess_pytorch_fid, preprocess_tf, resize_bilinear_tf


@pytest.mark.parametrize("in_hw", [(32, 32), (28, 28), (17, 23), (300, 310), (299, 299)])
def test_tf_resize_is_bit_exact_with_torch_fidelity(in_hw, rng):
    tf_compat = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
    x = torch.randint(0, 256, (2, 3, *in_hw), generator=rng).float()
    ours = resize_bilinear_tf(x, (299, 299))
    ref = tf_compat.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert ours.shape == (2, 3, 299, 299)
    assert torch.equal(ours, ref)


def test_tf_resize_semantics():
    # TF1 (half_pixel_centers=False): out[i] samples in[i * in/out], upper neighbour clamped at the border
    x = torch.tensor([[[[0.0, 10.0]]]])  # 1 x 2
    out = resize_bilinear_tf(x, (1, 4))
    assert out.flatten().tolist() == [0.0, 5.0, 10.0, 10.0]
    same = torch.rand(1, 3, 299, 299)
    assert torch.equal(resize_bilinear_tf(same, (299, 299)), same)
    with pytest.raises(TypeError, match="float"):
        resize_bilinear_tf(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), (4, 4))


def test_scaling_of_both_modes(rng):
    x = torch.randint(0, 256, (1, 3, 299, 299), generator=rng, dtype=torch.uint8)
    torch.testing.assert_close(preprocess_tf(x), (x.float() - 128) / 128)  # resize is the identity at 299
    torch.testing.assert_close(preprocess_pytorch_fid(x), x.float() / 255 * 2 - 1)
    small = torch.randint(0, 256, (1, 3, 32, 32), generator=rng, dtype=torch.uint8)
    expected = F.interpolate(small.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    torch.testing.assert_close(preprocess_pytorch_fid(small), expected)
    # the two protocols genuinely differ on upsampled images (why FIDs differ by ~0.5-2%)
    assert (preprocess_tf(small) - preprocess_pytorch_fid(small)).abs().max() > 0.05


def test_unknown_mode_lists_choices():
    with pytest.raises(ValueError, match="pytorch-fid"):
        get_preprocess("clean-fid")
