"""`arforge bench samplers` end to end on a tiny random model: every sampler row, speed-ups relative
to AR from the same run, JSON + markdown written, fewer passes for the accelerated samplers."""

import json

import torch

from arforge.cli import main
from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator
from arforge.tokenizers import VQConfig, VQTokenizer


def test_bench_samplers_writes_json_and_table(tmp_path, capsys):
    torch.manual_seed(0)
    tok = VQTokenizer(VQConfig(codebook_size=16, codebook_embed_dim=4, ch=16, norm_groups=8, encoder_ch_mult=[1, 2],
                               decoder_ch_mult=[1, 2], z_channels=16, num_res_blocks=1))
    tok.save_pretrained(tmp_path / "tok")
    gen = RasterGenerator(RasterConfig(vocab_size=16, grid_size=(4, 4), num_classes=3,
                                       backbone=BackboneConfig(dim=32, n_layer=1, n_head=2, multiple_of=16)))
    torch.nn.init.normal_(gen.output.weight, std=0.5)
    gen.pretrained_extra = {"tokenizer_dir": str(tmp_path / "tok")}
    gen.save_pretrained(tmp_path / "gen")
    out = tmp_path / "bench"
    code = main(["bench", "samplers", "--checkpoint", str(tmp_path / "gen"), "--out", str(out), "--samplers", "sjd:window=4",
                 "zipar:window=2", "sjd_lantern:k=3,delta=0.2", "--batch-sizes", "1", "2", "--timing-images", "2",
                 "--num-images", "0", "--cfg", "2.0", "--device", "cpu"])
    assert code == 0
    result = json.loads((out / "bench.json").read_text())
    rows = {r["sampler"]: r for r in result["results"]}
    assert list(rows) == ["ar", "sjd:window=4", "zipar:window=2", "sjd_lantern:k=3,delta=0.2"]
    assert rows["ar"]["speed"]["1"]["forward_passes_per_image"] == 16
    assert rows["ar"]["speed"]["2"]["speedup_vs_ar"] == 1.0
    assert rows["zipar:window=2"]["speed"]["1"]["forward_passes_per_image"] == 3 * 2 + 4
    assert rows["sjd:window=4"]["speed"]["1"]["forward_passes_per_image"] < 16
    table = (out / "bench.md").read_text()
    assert "| `zipar:window=2` | 10.0 |" in table and "speed-up @bs2" in table
    assert "benchmark written to" in capsys.readouterr().out
