"""The Inception port: layout, equality with the shipped TorchScript network, weight files and errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from arforge.eval import inception_weights as iw
from arforge.eval.inception import SPATIAL_DIM, InceptionV3
from arforge.eval.preprocess import preprocess_tf
from arforge.pretrained import CheckpointError


@pytest.fixture(scope="module")
def torchscript_reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(iw.fid_helper_path()), map_location="cpu").eval()


@pytest.fixture(scope="module")
def images_B3HW():
    g = torch.Generator().manual_seed(1)
    noise = torch.randint(0, 256, (1, 3, 40, 40), generator=g, dtype=torch.uint8)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(40, 40), mode="bilinear")
    return torch.cat([noise, (smooth * 255).round().to(torch.uint8)])


def test_reference_layout_covers_every_parameter_once():
    net = InceptionV3(with_logits=False)
    slots = net.reference_layout()
    assert len(slots) == 94 and len({s.reference for s in slots}) == 94
    filled: dict[str, int] = {}
    for s in slots:
        conv = net.get_submodule(s.target)
        assert s.shape[1:] == (conv.in_channels, *conv.kernel_size), s
        assert filled.get(s.target, 0) == s.offset, f"{s.reference} does not continue {s.target}'s channels"
        filled[s.target] = s.offset + s.shape[0]
    convs = {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert filled == {n: m.out_channels for n, m in convs.items()}


def test_pool3_matches_the_fid_helper_torchscript(torchscript_reference, images_B3HW):
    net = iw.load_inception()
    x = preprocess_tf(images_B3HW)
    with torch.inference_mode():
        ours = net(x, features=("pool3",))["pool3"]
        ref = torchscript_reference(x)
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, ref, atol=5e-5, rtol=1e-5)
    assert ref.abs().max() > 0.5  # a live network, not zeros


def test_spatial_features_are_mixed_6_conv_first_7_channels(torchscript_reference, images_B3HW):
    net = iw.load_inception()
    x = preprocess_tf(images_B3HW[1:])
    layers = torchscript_reference.net.layers
    with torch.inference_mode():
        ours = net(x, features=("spatial",))["spatial"]
        h = x
        for name in ["conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1", "mixed_2",
                     "mixed_3", "mixed_4", "mixed_5"]:
            h = getattr(layers, name)(h)
        ref = layers.mixed_6.conv(h)[:, :7].permute(0, 2, 3, 1).flatten(1)
    assert ours.shape == (1, SPATIAL_DIM)
    torch.testing.assert_close(ours, ref, atol=5e-5, rtol=1e-5)


def test_full_weights_file_gives_unbiased_logits(tmp_path, images_B3HW):
    g = torch.Generator().manual_seed(3)
    fc_w, fc_b = torch.randn(1008, 2048, generator=g) * 0.05, torch.randn(1008, generator=g)
    path = iw.export_reference_layout(tmp_path / "full.pth", fc_w, fc_b)
    net = iw.load_inception(path, need_logits=True)
    default = iw.load_inception()
    x = preprocess_tf(images_B3HW[1:])
    with torch.inference_mode():
        out = net(x, features=("pool3", "logits_unbiased"))
        pool3_default = default(x)["pool3"]
    torch.testing.assert_close(out["pool3"], pool3_default, atol=5e-5, rtol=1e-5)
    torch.testing.assert_close(out["logits_unbiased"], out["pool3"] @ fc_w.T, atol=1e-4, rtol=1e-5)


def test_missing_classifier_error_names_files_and_flag():
    with pytest.raises(ValueError) as err:
        iw.load_inception(need_logits=True)
    msg = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and "pt_inception-2015-12-05-6726825d.pth" in msg
    assert "--inception-weights" in msg
    with pytest.raises(ValueError, match="logits"):
        iw.load_inception()(torch.zeros(1, 3, 299, 299), features=("logits_unbiased",))


def test_zero_filled_classifier_in_hub_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    iw.export_reference_layout(tmp_path / "hub" / "checkpoints" / iw.HUB_FILE_NAMES[1])  # fc all zeros
    assert iw.hub_weights_path() is not None
    with pytest.raises(ValueError, match="all zeros"):
        iw.load_inception(need_logits=True)


def test_wrong_weights_files_are_rejected_with_reasons(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        iw.load_inception(tmp_path / "nope.pth")
    bad = tmp_path / "torchvision_like.pth"
    torch.save({"AuxLogits.conv0.conv.weight": torch.zeros(1), "fc.weight": torch.zeros(1000, 2048)}, bad)
    with pytest.raises(CheckpointError, match="AuxLogits"):
        iw.load_inception(bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        iw.load_inception(garbage)


def test_converted_weights_are_cached_and_rebuilt_when_damaged(caplog):
    iw.load_inception()
    cached = list((iw.cache_dir("inception")).glob("*.safetensors"))
    assert len(cached) == 1
    cached[0].write_bytes(b"damaged")
    with caplog.at_level("WARNING"):
        net = iw.load_inception()
    assert "converting again" in caplog.text and "unusable" in caplog.text
    assert cached[0].stat().st_size > 80_000_000 and net.stem["conv1"].weight.abs().sum() > 0


def test_fid_helper_checksum_is_enforced(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"x" * 10)
    with pytest.raises(CheckpointError, match="sha1"):
        iw.read_fid_helper(fake)
