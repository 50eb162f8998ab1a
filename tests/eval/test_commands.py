"""``arforge eval ...`` end to end: JSON line, merged metrics.json, errors as one-line messages."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from arforge.cli import main


def _json_line(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, out
    return json.loads(lines[0])


@pytest.fixture()
def sample_run(tmp_path, mnist_small):
    """An ``arforge sample``-style folder (samples.npz with images + labels) and a PNG reference folder."""
    a, b = mnist_small
    run = tmp_path / "samples-run"
    run.mkdir()
    np.savez(run / "samples.npz", images=a[:5], labels=np.arange(5, dtype=np.int64))
    ref = tmp_path / "ref_png"
    ref.mkdir()
    for i, im in enumerate(b[:5]):
        Image.fromarray(im).save(ref / f"{i}.png")
    return run, ref


def test_stats_then_fid_then_classify(sample_run, tmp_path, capsys, monkeypatch):
    run, ref = sample_run
    stats = tmp_path / "stats" / "ref.npz"
    assert main(["eval", "stats", str(ref), "--out", str(stats), "--device", "cpu", "--no-progress"]) == 0
    summary = _json_line(capsys.readouterr().out)
    assert summary["num_images"] == 5 and stats.is_file()
    assert json.loads((stats.parent / "metrics.json").read_text())["stats"]["stats"] == str(stats)

    assert main(["eval", "fid", "--samples", str(run / "samples.npz"), "--ref", str(stats), "--metrics", "fid,sfid",
                 "--device", "cpu", "--no-progress"]) == 0
    result = _json_line(capsys.readouterr().out)
    assert result["fid"] > 10 and result["sfid"] > 0 and result["num_samples"] == 5

    from arforge.eval import classifier as clf

    quick = clf.train_mnist_classifier(seed=0, max_steps=3)
    monkeypatch.setattr(clf, "load_or_train_mnist_classifier", lambda seed=0, cache_dir_path=None: quick)
    assert main(["eval", "classify", "--samples", str(run / "samples.npz")]) == 0
    cls = _json_line(capsys.readouterr().out)
    assert 0 <= cls["class_accuracy"] <= 1 and sorted(cls["per_class_accuracy"]) == ["0", "1", "2", "3", "4"]
    merged = json.loads((run / "metrics.json").read_text())
    assert merged["fid"]["fid"] == result["fid"] and merged["classify"]["num_images"] == 5


def test_user_errors_are_one_line_messages(sample_run, tmp_path, capsys):
    run, ref = sample_run
    assert main(["eval", "fid", "--samples", str(tmp_path / "missing.npz"), "--ref", str(ref), "--device", "cpu"]) == 2
    assert "image source not found" in capsys.readouterr().err
    assert main(["eval", "is", "--samples", str(run / "samples.npz"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "--inception-weights" in err
    assert main(["eval", "fid", "--samples", str(run), "--ref", str(ref), "--metrics", "fid,bogus"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "stats", str(tmp_path / "empty"), "--out", str(tmp_path / "s.npz")]) == 2
    assert "no images found" in capsys.readouterr().err


class _SignTokenizer(nn.Module):
    """Codes: 1 where a pixel is brighter than mid-gray; decode paints black/white."""

    codebook_size = 2

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(in_channels=3)
        self.anchor = nn.Parameter(torch.zeros(()))

    def encode(self, images_BCHW):
        return (images_BCHW.mean(1) > 0).long()

    def decode(self, codes_Bhw):
        return (codes_Bhw.float() * 2 - 1)[:, None].expand(-1, 3, -1, -1)


def test_recon_command_loads_through_load_pretrained(sample_run, tmp_path, capsys, monkeypatch):
    run, _ = sample_run
    tok_dir = tmp_path / "tok" / "model"
    tok_dir.mkdir(parents=True)
    (tok_dir / "config.json").write_text("{}")
    seen = []

    def fake_load(directory, kind=None, map_location="cpu"):
        seen.append((str(directory), kind))
        return _SignTokenizer()

    monkeypatch.setattr("arforge.auto.load_pretrained", fake_load)
    out = tmp_path / "recon_out"
    assert main(["eval", "recon", "--tokenizer", str(tok_dir.parent), "--data", str(run / "samples.npz"),
                 "--no-rfid", "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    res = _json_line(capsys.readouterr().out)
    assert seen == [(str(tok_dir), "tokenizer")]
    assert res["num_images"] == 5 and res["psnr_db"] > 3 and res["codebook_used"] == 2
    assert json.loads((out / "metrics.json").read_text())["recon"]["psnr_db"] == res["psnr_db"]


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "fid", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--inception-weights" in text and "(default: tf)" in text and "(default: 50)" in text


@pytest.mark.slow
def test_quickstart_style_samples_against_mnist_val(tmp_path, capsys):
    """``arforge eval fid --samples samples.npz --ref mnist:val`` end to end (500 reference images)."""
    from arforge.data.mnist import mnist_uint8

    train, labels = mnist_uint8("train")
    idx = np.concatenate([np.flatnonzero(labels == c)[:10] for c in range(10)])
    np.savez(tmp_path / "samples.npz", images=train[idx], labels=labels[idx])
    assert main(["eval", "fid", "--samples", str(tmp_path / "samples.npz"), "--ref", "mnist:val", "--device", "cpu",
                 "--no-progress"]) == 0
    res = _json_line(capsys.readouterr().out)
    print(res)
    assert res["num_reference"] == 500 and res["reference_stats"] == "cached" and 0 < res["fid"] < 200
