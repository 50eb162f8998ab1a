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
    elif task["name"] in ("generator", "latent_generator") and task.get("family") in ("raster", "nbp", "nar", "xar", "raster_flow", "mar"):
        import arforge.generators  # noqa: F401  (registers the families)
        import arforge.generators.mar  # noqa: F401
        from arforge.pretrained import MODEL_CLASSES

        grid = [3, 8, 8] if "moving_mnist" in path.name else [8, 8] if "mnist" in path.name else [16, 16]
        derived = {"grid_size": grid, "num_classes": 10}
        derived.update({"vocab_size": 64} if task["name"] == "generator" else {"latent_channels": 4})
        model = {**(task.get("model") or {}), **derived}
        if "backbone" in model:
            model["backbone"] = {**model["backbone"], "dim": 32, "n_head": 2, "n_layer": 1}
        MODEL_CLASSES.get(f"generator/{task['family']}").from_config_dict(model, source=str(path))
    elif task.get("family") == "flowar":
        side = task["model"]["patch_nums"][-1]
        model = dict(task["model"], latent_channels=4, grid_size=[side, side], num_classes=10)
        FlowARGenerator.from_config_dict({**model, "backbone": {**model.get("backbone", {}), "dim": 64, "n_head": 2}})


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"mnist_msvq.yaml", "mnist_var.yaml", "mnist_flowar.yaml", "imagenet256_var_d16.yaml", "mnist_nbp.yaml",
            "mnist_nar.yaml", "mnist_xar.yaml", "mnist_mar.yaml"} <= names
