"""docs/extending.md: a new order, a new sampler and a new tokenizer, each in one user file outside the
package, used from the command line with --import (train a few steps, sample, bench), at tiny size."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from arforge.cli import main
from arforge.plugins import import_plugin

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
TOKENIZER, ORDER, SAMPLER = (str(EXAMPLES / n) for n in ("patch_vq_tokenizer.py", "column_major_order.py", "annealed_sampler.py"))
TINY_GENERATOR = ["train.steps=4", "train.eval_every=0", "train.ckpt_every=0", "data.source.limit=64", "data.batch_size=8",
                  "task.model.backbone={dim: 32, n_layer: 1, n_head: 2, multiple_of: 16}"]


@pytest.fixture(scope="module")
def patch_vq(tmp_path_factory):
    """The user tokenizer, trained through the CLI: its run folder."""
    out = tmp_path_factory.mktemp("patch_vq") / "tok"
    assert main(["train", "--import", TOKENIZER, str(EXAMPLES / "patch_vq.yaml"), "--out", str(out), "--device", "cpu",
                 "--set", "train.steps=30", "data.limit=256", "train.eval_every=15", "train.ckpt_every=0",
                 "task.codebook_size=32"]) == 0
    return out


def _train_generator(tmp_path, tokenizer_dir, *extra_imports: str, config="configs/mnist_raster.yaml", sets=()):
    root = Path(__file__).resolve().parents[1]
    imports = [a for spec in (TOKENIZER, *extra_imports) for a in ("--import", spec)]
    assert main(["train", *imports, str(root / config) if not Path(config).is_absolute() else config,
                 "--out", str(tmp_path / "gen"), "--device", "cpu",
                 "--set", f"data.tokenizer={tokenizer_dir / 'model'}", *TINY_GENERATOR, *sets]) == 0
    return tmp_path / "gen"


def test_tokenizer_example_trains_and_generators_train_and_sample_on_its_codes(patch_vq, tmp_path):
    metrics = [json.loads(line) for line in (patch_vq / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0]  # the codebook learns
    module = import_plugin(TOKENIZER)
    from arforge.auto import load_pretrained

    tok = load_pretrained(patch_vq / "model", kind="tokenizer")
    assert isinstance(tok, module.PatchVQTokenizer) and tok.grid_shape(32) == (8, 8)
    codes = tok.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert codes.shape == (2, 8, 8) and codes.dtype == torch.long and tok.decode(codes).shape == (2, 3, 32, 32)

    gen = _train_generator(tmp_path, patch_vq)  # a built-in raster generator on the user tokenizer's codes
    out = tmp_path / "samples"
    assert main(["sample", "--import", TOKENIZER, "--checkpoint", str(gen), "--num-per-class", "1", "--cfg", "2",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert np.load(out / "samples.npz")["images"].shape == (10, 32, 32, 3)
    assert main(["bench", "samplers", "--import", TOKENIZER, "--checkpoint", str(gen), "--samplers", "ar",
                 "--num-images", "0", "--timing-images", "2", "--batch-sizes", "1", "--out", str(tmp_path / "bench"),
                 "--device", "cpu"]) == 0


def test_order_example_decodes_what_it_trains_and_runs_from_the_cli(patch_vq, tmp_path):
    module = import_plugin(ORDER)
    order = module.ColumnMajor((3, 4))
    emitted = torch.cat([s.emit_E for s in order.decode_schedule()])
    assert emitted.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]

    gen_dir = _train_generator(tmp_path, patch_vq, ORDER, config=str(EXAMPLES / "column_major.yaml"))
    from arforge.auto import load_pretrained
    from arforge.samplers import CFGSchedule
    from arforge.samplers.ar import run_schedule
    from arforge.samplers.context import start_decoding

    gen = load_pretrained(gen_dir / "model").eval()
    assert isinstance(gen.order, module.ColumnMajor)
    torch.nn.init.normal_(gen.output.weight, std=0.5)  # an informative head: the oracle below must see differences
    tokens = torch.randint(0, gen.vocab_size, (2, gen.num_tokens), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([3, 7])
    seen = torch.zeros(2, gen.num_tokens, gen.vocab_size)

    def pick(logits, step):  # feed the given tokens, record what KV-cached decoding computes
        seen[:, step.emit_E] = logits
        return tokens[:, step.emit_E]

    with torch.no_grad():
        run_schedule(gen, gen.order.decode_schedule(), start_decoding(gen, labels, CFGSchedule(1.0)), pick)
        torch.testing.assert_close(seen, gen(tokens, labels), atol=1e-4, rtol=1e-4)

    imports = ["--import", TOKENIZER, "--import", ORDER]
    assert main(["sample", *imports, "--checkpoint", str(gen_dir), "--num-per-class", "1", "--out", str(tmp_path / "s"),
                 "--device", "cpu"]) == 0
    assert main(["bench", "samplers", *imports, "--checkpoint", str(gen_dir), "--samplers", "ar", "--num-images", "0",
                 "--timing-images", "2", "--batch-sizes", "1", "--out", str(tmp_path / "bench"), "--device", "cpu"]) == 0
    without = subprocess.run([sys.executable, "-m", "arforge.cli", "sample", "--import", TOKENIZER, "--checkpoint", str(gen_dir),
                              "--out", str(tmp_path / "x")], capture_output=True, text=True)  # a fresh process, no order plug-in
    assert without.returncode == 2 and "unknown order 'model.order.name: column_major'" in without.stderr


def test_sampler_example_is_ar_at_constant_temperature_and_runs_from_the_cli(patch_vq, tmp_path):
    module = import_plugin(SAMPLER)
    from arforge.auto import load_pretrained
    from arforge.samplers import ARSampler, build_sampler

    gen_dir = _train_generator(tmp_path, patch_vq)
    gen = load_pretrained(gen_dir / "model").eval()
    torch.nn.init.normal_(gen.output.weight, std=0.5)  # an informative head, so that temperature matters
    labels = torch.tensor([0, 1, 2])
    plain = ARSampler(cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(5)).tokens
    same = build_sampler("annealed_ar", start=1.0, end=1.0, cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(5))
    assert isinstance(build_sampler("annealed_ar"), module.AnnealedARSampler) and torch.equal(same.tokens, plain)
    cooler = build_sampler("annealed_ar", start=1.0, end=0.2, cfg=2.0).sample(gen, labels, generator_rng=torch.Generator().manual_seed(5))
    assert not torch.equal(cooler.tokens, plain)

    imports = ["--import", TOKENIZER, "--import", SAMPLER]
    assert main(["sample", *imports, "--checkpoint", str(gen_dir), "--sampler", "annealed_ar:start=1.2,end=0.7",
                 "--cfg", "2", "--num-per-class", "1", "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "s" / "sample_stats.json").read_text())["sampler"] == "annealed_ar:start=1.2,end=0.7"
    assert main(["bench", "samplers", *imports, "--checkpoint", str(gen_dir), "--samplers", "ar", "annealed_ar:end=0.5",
                 "--num-images", "0", "--timing-images", "2", "--batch-sizes", "1", "--out", str(tmp_path / "b"),
                 "--device", "cpu"]) == 0
    names = [r["sampler"] for r in json.loads((tmp_path / "b" / "bench.json").read_text())["results"]]
    assert names == ["ar", "annealed_ar:end=0.5"]
