"""LlamaGen GPT golden fixtures (made with LlamaGen's own code) reproduced through strict loading."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from arforge.interop import load_gpt
from arforge.interop.llamagen_gpt import grid_from_filename
from arforge.pretrained import CheckpointError
from arforge.samplers import ARSampler, LogitsPipeline


def _fixture(interop_dir, name):
    path = interop_dir / name
    with safe_open(str(path), "pt") as f:
        args = json.loads(f.metadata()["config"])["ModelArgs"]
    return path, load_file(str(path)), args


@pytest.mark.parametrize("name", ["llamagen_gpt_c2i.safetensors", "llamagen_gpt_t2i.safetensors"])
def test_llamagen_gpt_fixture_reproduced(interop_dir, name):
    path, t, args = _fixture(interop_dir, name)
    side = int(args["block_size"] ** 0.5)
    model = load_gpt(path, prefix="model.", grid_size=(side, side), n_head=args["n_head"])
    caption = args["model_type"] == "t2i"
    cond = t["io.caption"] if caption else t["io.labels"]
    mask = t["io.emb_mask"] if caption else None
    with torch.no_grad():
        torch.testing.assert_close(model(t["io.tokens"], cond, mask), t["io.logits"], atol=1e-5, rtol=1e-5)
        cache = model.new_cache(2)
        steps = [model.prefill(cond, cache, mask)]
        for i in range(args["block_size"] - 1):
            steps.append(model.decode(t["io.tokens"][:, i:i + 1], torch.full((2, 1), i), cache)[:, 0])
    torch.testing.assert_close(torch.stack(steps, 1), t["io.kv_logits"], atol=1e-5, rtol=1e-5)
    greedy = ARSampler(cfg=4.0, logits=LogitsPipeline(greedy=True)).sample(model, cond, cond_mask=mask)
    assert torch.equal(greedy.tokens.flatten(1), t["io.greedy_cfg_tokens"])


def test_llamagen_checkpoint_layouts(tmp_path, interop_dir):
    path, t, args = _fixture(interop_dir, "llamagen_gpt_c2i.safetensors")
    weights = {k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}
    # DDP-style .pt dict with a stale freqs_cis entry
    pt = tmp_path / "c2i_T_64.pt"
    torch.save({"model": dict(weights, freqs_cis=torch.zeros(17, 8, 2)), "steps": 10}, pt)
    model = load_gpt(pt, n_head=4, downsample=16)
    assert model.config.grid_size == (4, 4) and model.config.num_classes == 10
    # a missing tensor is reported by name
    broken = dict(weights)
    del broken["layers.1.ffn_norm.weight"]
    bad = tmp_path / "broken.safetensors"
    save_file(broken, str(bad))
    with pytest.raises(CheckpointError, match="layers.1.ffn_norm.weight"):
        load_gpt(bad, n_head=4, grid_size=(4, 4))
    with pytest.raises(CheckpointError, match="pass n_head"):
        load_gpt(pt)
    with pytest.raises(CheckpointError, match="not a LlamaGen GPT"):
        save_file({"encoder.conv_in.weight": torch.zeros(1)}, str(tmp_path / "vq.safetensors"))
        load_gpt(tmp_path / "vq.safetensors", grid_size=(4, 4), n_head=4)


def test_grid_from_released_file_names():
    assert grid_from_filename("c2i_B_256.pt") == (16, 16)
    assert grid_from_filename("/x/c2i_3B_384.pt") == (24, 24)
    assert grid_from_filename("model.pt") is None
