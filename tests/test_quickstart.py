"""`arforge quickstart`: a fast smoke run that checks the run folder, and the full run (slow) that
checks the acceptance numbers of the Foundation issue."""

import json

import numpy as np
import pytest

from arforge.cli import main
from arforge.quickstart import run_quickstart

SMOKE_TOKENIZER = ["train.steps=2", "train.eval_every=0", "train.ckpt_every=0", "data.limit=64"]
SMOKE_GENERATOR = ["train.steps=2", "train.eval_every=0", "train.ckpt_every=0", "data.source.limit=64", "data.val_split=null"]


def test_quickstart_smoke_writes_the_whole_run_folder(tmp_path):
    run_dir, metrics = run_quickstart(tmp_path / "qs", device="cpu", tokenizer_overrides=SMOKE_TOKENIZER,
                                      generator_overrides=SMOKE_GENERATOR, num_per_class=1, fid=False)
    for rel in ["tokenizer/model/model.safetensors", "generator/model/model.safetensors", "samples/samples.npz",
                "samples/grid.png", "grid.png", "metrics.json"]:
        assert (run_dir / rel).is_file(), rel
    assert list((run_dir / "tokenizer" / "checkpoints").glob("step_*")), "tokenizer checkpoints"
    assert list((run_dir / "generator" / "checkpoints").glob("step_*")), "generator checkpoints"
    samples = np.load(run_dir / "samples" / "samples.npz")
    assert samples["images"].shape == (10, 32, 32, 3) and samples["labels"].tolist() == list(range(10))
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert 0.0 <= saved["samples"]["class_accuracy"] <= 1.0 and saved["samples"]["forward_passes_per_image"] == 64
    # a second run never overwrites the first
    again, _ = run_quickstart(tmp_path / "qs", device="cpu", tokenizer_overrides=SMOKE_TOKENIZER,
                              generator_overrides=SMOKE_GENERATOR, num_per_class=1, fid=False)
    assert again == tmp_path / "qs-2"


@pytest.mark.slow
def test_quickstart_meets_the_foundation_targets(tmp_path, capsys):
    """The README's main job: PSNR >= 24 dB, codebook usage >= 70 %, class accuracy >= 90 %."""
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    assert metrics["tokenizer"]["psnr_db"] >= 24.0
    assert metrics["tokenizer"]["codebook_usage"] >= 0.70
    assert metrics["samples"]["class_accuracy"] >= 0.90
