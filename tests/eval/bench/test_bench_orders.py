"""`arforge bench orders` end to end on tiny random raster and VAR models over the same 4x4 grid:
one row per model with its own sampler and CFG options, passes = tokens (raster) vs scales (VAR),
speed-ups relative to the first model, JSON + markdown; malformed model/option lists are named."""

import json

import pytest
import torch

from arforge.cli import main
from arforge.eval.bench.orders import parse_models
from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator, VARConfig, VARGenerator, var_backbone
from arforge.tokenizers import MultiScaleVQConfig, MultiScaleVQTokenizer, VQConfig, VQTokenizer


def test_bench_orders_raster_vs_var(tmp_path, capsys):
    torch.manual_seed(0)
    VQTokenizer(VQConfig(codebook_size=16, codebook_embed_dim=4, ch=16, norm_groups=8, encoder_ch_mult=[1, 2],
                         decoder_ch_mult=[1, 2], z_channels=16, num_res_blocks=1)).save_pretrained(tmp_path / "vq")
    MultiScaleVQTokenizer(MultiScaleVQConfig(patch_nums=[1, 2, 4], codebook_size=16, latent_channels=4, block_out_channels=[8, 8],
                                             layers_per_block=1, encoder_attn_levels=[], decoder_attn_levels=[],
                                             norm_num_groups=8)).save_pretrained(tmp_path / "msvq")
    raster = RasterGenerator(RasterConfig(vocab_size=16, grid_size=(4, 4), num_classes=3,
                                          backbone=BackboneConfig(dim=32, n_layer=1, n_head=2, multiple_of=16)))
    raster.pretrained_extra = {"tokenizer_dir": str(tmp_path / "vq")}
    raster.save_pretrained(tmp_path / "raster")
    backbone = var_backbone(1)
    backbone.dim, backbone.n_head = 32, 2
    var = VARGenerator(VARConfig(vocab_size=16, latent_channels=4, patch_nums=[1, 2, 4], num_classes=3, backbone=backbone))
    var.pretrained_extra = {"tokenizer_dir": str(tmp_path / "msvq")}
    var.save_pretrained(tmp_path / "var")
    out = tmp_path / "bench"
    code = main(["bench", "orders", "--models", f"raster={tmp_path / 'raster'}", f"var={tmp_path / 'var'}",
                 "--options", "var:cfg_schedule=linear,cfg=3", "--batch-sizes", "1", "2", "--timing-images", "2",
                 "--num-images", "0", "--cfg", "2.0", "--device", "cpu", "--out", str(out)])
    assert code == 0
    rows = {r["name"]: r for r in json.loads((out / "bench.json").read_text())["results"]}
    assert rows["raster"]["sampler"] == "ar" and rows["var"]["sampler"] == "var"
    assert rows["raster"]["speed"]["1"]["forward_passes_per_image"] == 16
    assert rows["var"]["speed"]["1"]["forward_passes_per_image"] == 3 and rows["var"]["num_tokens"] == 21
    assert rows["var"]["cfg"] == {"scale": 3.0, "kind": "linear"} and rows["raster"]["cfg"]["kind"] == "constant"
    assert rows["raster"]["speed"]["2"]["speedup_vs_first"] == 1.0
    assert "| var | var | `var` |" in (out / "bench.md").read_text()
    assert "benchmark written to" in capsys.readouterr().out


@pytest.mark.parametrize("models, options, message", [(["raster"], [], "NAME=DIR"), (["a=x", "a=y"], [], "unique"),
                                                      (["a=x"], ["b:cfg=2"], "NAME given"), (["a=x"], ["a:steps"], "key=value")])
def test_bad_model_lists_are_named(models, options, message):
    with pytest.raises(ValueError, match=message):
        parse_models(models, options)


def test_other_option_keys_are_sampler_options():
    (entry,) = parse_models(["f=x"], ["f:cfg=2,head_steps=50,head_steps_end=5"])
    assert entry["cfg"] == 2 and entry["sampler_options"] == {"head_steps": 50, "head_steps_end": 5}
