"""LlamaGen VQ golden fixture (made with LlamaGen's own code) reproduced through strict loading,
plus the checkpoint file formats and error messages of the loader."""

import argparse
import logging

import pytest
import torch
from safetensors.torch import save_file

from arforge.config import ConfigError
from arforge.interop import load_vq, read_state_dict
from arforge.interop.llamagen_vq import vq_config_from_state_dict
from arforge.pretrained import CheckpointError, load_state_dict_strict
from arforge.tokenizers import VQConfig, VQTokenizer

NAME = "llamagen_vq.safetensors"
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture(interop_dir, interop_fixture):
    meta, weights, io = interop_fixture(NAME)
    return interop_dir / NAME, meta, weights, io


def _check_outputs(model: VQTokenizer, io: dict) -> None:
    with torch.no_grad():
        z = model.encode_to_latent(io["img"])
        torch.testing.assert_close(z, io["h_pre_quant"], **TOL)
        q = model.quantize(z)
        torch.testing.assert_close(q.z_q, io["quant"], **TOL)
        assert q.codes.dtype == torch.int64 and torch.equal(q.codes, io["codes"])
        assert torch.equal(model.encode(io["img"]), io["codes"])
        torch.testing.assert_close(model.decode_latent(q.z_q), io["rec_from_quant"], **TOL)
        torch.testing.assert_close(model(io["img"]).recon, io["rec_from_quant"], **TOL)
        torch.testing.assert_close(model.decode(io["codes"]), io["dec_from_codes"], **TOL)


def test_fixture_reproduced_with_metadata_config(fixture):
    path, meta, weights, io = fixture
    config = VQConfig(**meta["ModelArgs"], **meta["encoder_decoder_overrides"])
    model = VQTokenizer(config).eval()
    load_state_dict_strict(model, weights, str(path))
    _check_outputs(model, io)


def test_fixture_reproduced_with_inferred_config(fixture):
    path, meta, weights, io = fixture
    model = load_vq(path, prefix="model.")
    assert not model.training
    args = meta["ModelArgs"]
    c = model.config
    assert (c.codebook_size, c.codebook_embed_dim, c.ch, c.z_channels) == (args["codebook_size"], args["codebook_embed_dim"], 32, args["z_channels"])
    assert c.encoder_ch_mult == args["encoder_ch_mult"] and c.decoder_ch_mult == args["decoder_ch_mult"]
    assert c.num_res_blocks == 2 and c.resolved_attn_levels == [1] and c.codebook_show_usage
    assert model.downsample_factor == 2 and model.grid_shape(32) == (16, 16)
    # the l2-normalised codebook is what the decoder sees
    torch.testing.assert_close(model.codebook, torch.nn.functional.normalize(weights["quantize.embedding.weight"], dim=-1))
    _check_outputs(model, io)


def test_strict_load_lists_missing_and_unexpected_keys(tmp_path, fixture):
    path, meta, weights, io = fixture
    broken = dict(weights)
    del broken["decoder.conv_blocks.1.res.2.conv2.bias"]
    broken["decoder.extra_head.weight"] = torch.zeros(3)
    bad = tmp_path / "broken.safetensors"
    save_file(broken, str(bad))
    with pytest.raises(CheckpointError) as err:
        load_vq(bad)
    message = str(err.value)
    assert "missing keys: decoder.conv_blocks.1.res.2.conv2.bias" in message
    assert "unexpected keys: decoder.extra_head.weight" in message
    # an override contradicting the weights shows up as a shape mismatch
    with pytest.raises(CheckpointError, match=r"shape mismatches: quantize\.embedding\.weight"):
        load_vq(path, prefix="model.", codebook_size=32)
    with pytest.raises(ConfigError, match="codebook_sise"):
        load_vq(path, prefix="model.", codebook_sise=32)
    with pytest.raises(CheckpointError, match="prefix 'ema.'"):
        load_vq(path, prefix="ema.")
    save_file({"tok_embeddings.weight": torch.zeros(4, 4)}, str(tmp_path / "gpt.safetensors"))
    with pytest.raises(CheckpointError, match="not a LlamaGen VQ checkpoint"):
        load_vq(tmp_path / "gpt.safetensors")


def test_pt_checkpoint_layouts(tmp_path, fixture, caplog):
    path, meta, weights, io = fixture
    # LlamaGen training checkpoint: {"model", "optimizer", "steps", "args": argparse.Namespace}
    ddp = tmp_path / "vq_ds2_c2i.pt"
    torch.save({"model": weights, "optimizer": {"state": {}}, "steps": 7, "args": argparse.Namespace(vq_model="VQ-16")}, ddp)
    _check_outputs(load_vq(ddp), io)
    # explicit choice of the EMA weights; automatic choice prefers "model"
    ema_weights = {k: v + 1.0 if k == "quant_conv.bias" else v for k, v in weights.items()}
    both = tmp_path / "both.pth"
    torch.save({"model": weights, "ema": ema_weights}, both)
    torch.testing.assert_close(read_state_dict(both, key="ema")["quant_conv.bias"], weights["quant_conv.bias"] + 1.0)
    with caplog.at_level(logging.DEBUG, logger="arforge.interop.checkpoint_files"):
        torch.testing.assert_close(read_state_dict(both)["quant_conv.bias"], weights["quant_conv.bias"])
    assert "using the state dict under key 'model'" in caplog.text
    with pytest.raises(CheckpointError, match="no entry 'model_ema'.*model, ema"):
        read_state_dict(both, key="model_ema")
    # bare (FSDP-consolidated style) state dict
    bare = tmp_path / "consolidated.bin"
    torch.save(weights, bare)
    assert set(read_state_dict(bare)) == set(weights)


def test_checkpoint_file_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(corrupt)
    corrupt_st = tmp_path / "corrupt.safetensors"
    corrupt_st.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="cannot read .* as safetensors"):
        read_state_dict(corrupt_st)
    with pytest.raises(CheckpointError, match="unsupported checkpoint type '.npz'"):
        (tmp_path / "w.npz").write_bytes(b"x")
        read_state_dict(tmp_path / "w.npz")
    nested = tmp_path / "nested.pt"
    torch.save({"weights": {"a": torch.zeros(1)}, "epoch": 3}, nested)
    with pytest.raises(CheckpointError, match="pass key=<entry>"):
        read_state_dict(nested)
    assert set(read_state_dict(nested, key="weights")) == {"a"}
    not_tensors = tmp_path / "meta.pt"
    torch.save({"model": {"a": torch.zeros(1), "note": "hello"}}, not_tensors)
    with pytest.raises(CheckpointError, match="non-tensor entries: note"):
        read_state_dict(not_tensors)


class _Opaque:
    """An arbitrary class: weights_only loading must refuse to unpickle it."""


def test_untrusted_objects_are_not_unpickled(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"a": torch.zeros(1)}, "obj": _Opaque()}, evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_dict(evil)


def test_width_changing_blocks_use_nin_shortcut(tmp_path):
    """Not covered by the fixture: ch_mult with a width change creates nin_shortcut convs."""
    torch.manual_seed(3)
    config = VQConfig(codebook_size=16, codebook_embed_dim=4, ch=32, encoder_ch_mult=[1, 2], decoder_ch_mult=[1, 2],
                      z_channels=32, num_res_blocks=1)
    model = VQTokenizer(config).eval()
    keys = set(model.state_dict())
    assert "encoder.conv_blocks.1.res.0.nin_shortcut.weight" in keys  # 32 -> 64 on the way down
    assert "decoder.conv_blocks.1.res.0.nin_shortcut.weight" in keys  # 64 -> 32 on the way up
    assert model.state_dict()["encoder.conv_blocks.1.res.0.nin_shortcut.weight"].shape == (64, 32, 1, 1)
    assert not any("nin_shortcut" in k for k in keys if ".res.1." in k)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        out = model(images)
    assert out.recon.shape == images.shape and out.codes.shape == (2, 8, 8)
    ckpt = tmp_path / "vq_custom.pt"
    torch.save({"model": model.state_dict(), "steps": 1}, ckpt)
    loaded = load_vq(ckpt)
    assert loaded.config.encoder_ch_mult == [1, 2] and loaded.config.num_res_blocks == 1
    with torch.no_grad():
        again = loaded(images)
    assert torch.equal(again.codes, out.codes)
    torch.testing.assert_close(again.recon, out.recon)


def test_config_inference_matches_llamagen_presets():
    """VQ-16 / VQ-8 at released sizes (meta tensors, no memory): LlamaGen's tensor and parameter
    counts (reference: 344 tensors and 71.9M parameters for VQ-16, 70.1M for VQ-8), and the
    config is read back from the shapes alone."""
    for ch_mult, millions in (([1, 1, 2, 2, 4], 71.9), ([1, 2, 2, 4], 70.1)):
        with torch.device("meta"):
            model = VQTokenizer(VQConfig(encoder_ch_mult=ch_mult, decoder_ch_mult=ch_mult))
        sd = model.state_dict()
        assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == millions
        if len(ch_mult) == 5:
            assert len(sd) == 344
        assert vq_config_from_state_dict(sd) == model.config
        assert sd["quantize.codebook_used"].shape == (65536,) and sd["quantize.embedding.weight"].shape == (16384, 8)
