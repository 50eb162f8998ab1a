"""Every shipped recipe in configs/ parses against the run schema, and its task and model sections
build their config dataclasses (so a typo in a recipe fails here, not after hours of data loading)."""

from pathlib import Path

import pytest

from arforge.train.schema import load_run_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_recipe_parses_and_its_model_config_validates(path):
    from arforge.config import from_dict
    from arforge.generators import FlowARGenerator, VARGenerator
    from arforge.tokenizers import KLConfig, MultiScaleVQConfig, VQConfig

    cfg = load_run_config(path)
    task = dict(cfg.task)
    tokenizer_configs = {"vq_tokenizer": VQConfig, "kl_tokenizer": KLConfig, "msvq_tokenizer": MultiScaleVQConfig}
    if task["name"] in tokenizer_configs:
        from_dict(tokenizer_configs[task["name"]], task.get("tokenizer") or {}, source=str(path), prefix="task.tokenizer")
    elif task["name"] == "var_generator":
        model = dict(task.get("model") or {}, vocab_size=64, latent_channels=8, patch_nums=[1, 2], num_classes=10)
        VARGenerator.from_config_dict({**model, "backbone": {**model.get("backbone", {}), "dim": 64, "n_head": 2}})
    elif task.get("family") == "flowar":
        side = task["model"]["patch_nums"][-1]
        model = dict(task["model"], latent_channels=4, grid_size=[side, side], num_classes=10)
        FlowARGenerator.from_config_dict({**model, "backbone": {**model.get("backbone", {}), "dim": 64, "n_head": 2}})


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"mnist_msvq.yaml", "mnist_var.yaml", "mnist_flowar.yaml", "imagenet256_var_d16.yaml"} <= names
