"""End-to-end CLI: `arforge sample` outputs, reproducibility, and one-line errors for bad input."""

import json

import numpy as np
import pytest
import torch

from arforge.cli import main
from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator
from arforge.tokenizers import VQConfig, VQTokenizer


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tok = VQTokenizer(VQConfig(codebook_size=16, codebook_embed_dim=4, ch=16, norm_groups=8, encoder_ch_mult=[1, 2],
                               decoder_ch_mult=[1, 2], z_channels=16, num_res_blocks=1))
    tok.save_pretrained(root / "tok")
    gen = RasterGenerator(RasterConfig(vocab_size=16, grid_size=(4, 4), num_classes=3,
                                       backbone=BackboneConfig(dim=32, n_layer=1, n_head=2, multiple_of=16)))
    torch.nn.init.normal_(gen.output.weight, std=0.5)
    gen.pretrained_extra = {"tokenizer_dir": str(root / "tok")}
    gen.save_pretrained(root / "run" / "model")
    return root


def test_sample_writes_pngs_grid_and_npz_reproducibly(tiny_models, tmp_path, capsys):
    args = ["sample", "--checkpoint", str(tiny_models / "run"), "--num-per-class", "2", "--cfg", "2.0",
            "--top-k", "8", "--seed", "3", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = np.load(tmp_path / "a" / "samples.npz"), np.load(tmp_path / "b" / "samples.npz")
    assert a["images"].shape == (6, 8, 8, 3) and a["images"].dtype == np.uint8
    assert a["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    assert np.array_equal(a["images"], b["images"])  # same seed -> bit-identical
    assert (tmp_path / "a" / "grid.png").is_file() and len(list((tmp_path / "a" / "samples").glob("*.png"))) == 6
    stats = json.loads((tmp_path / "a" / "sample_stats.json").read_text())
    assert stats["num_images"] == 6 and stats["forward_passes_per_batch"] == 16


def test_failed_sample_run_keeps_earlier_outputs(tiny_models, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", str(tiny_models / "run"), "--classes", "1", "--out", str(out), "--device", "cpu"]) == 0
    before = (out / "samples.npz").read_bytes()
    assert main(["sample", "--checkpoint", str(tiny_models / "run"), "--classes", "7", "--out", str(out), "--device", "cpu"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert (out / "samples.npz").read_bytes() == before


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda root: ["sample", "--checkpoint", str(root / "nope"), "--device", "cpu"], "does not exist"),
        (lambda root: ["sample", "--checkpoint", str(root / "tok"), "--device", "cpu"], "holds a vq tokenizer"),
        (lambda root: ["sample", "--checkpoint", str(root / "run"), "--tokenizer", str(root / "run"), "--device", "cpu"],
         "not a tokenizer"),
        (lambda root: ["train", str(root / "missing.yaml")], "not found"),
    ],
)
def test_bad_input_gives_a_one_line_error(tiny_models, make_args, message, capsys):
    assert main(make_args(tiny_models)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_every_command_has_help(capsys):
    for command in (["train"], ["sample"], ["eval", "fid"], ["quickstart"]):
        with pytest.raises(SystemExit) as exc:
            main(command + ["--help"])
        assert exc.value.code == 0
        assert "default" in capsys.readouterr().out
