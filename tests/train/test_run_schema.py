"""Run-config loading: strict keys and types with file names, ``--set`` overrides."""

from __future__ import annotations

import pytest

from arforge.config import ConfigError
from arforge.train.schema import RunConfig, apply_overrides, load_run_config, parse_override

from tiny_train_task import TASK_NAME, tiny_run_dict


def test_loads_defaults_and_sections(write_config):
    cfg = load_run_config(write_config({"task": {"name": TASK_NAME, "hidden": 8}}))
    assert isinstance(cfg, RunConfig)
    assert cfg.task_name == TASK_NAME and cfg.task_options == {"hidden": 8}
    assert cfg.data.name == "mnist" and cfg.train.steps == 1000 and cfg.optim.schedule == "cosine"
    assert cfg.optim.betas == (0.9, 0.95)


def test_typo_names_dotted_key_and_file(write_config):
    path = write_config(tiny_run_dict(train={"stepz": 5}), name="typo.yaml")
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    msg = str(err.value)
    assert "'train.stepz'" in msg and str(path) in msg and "steps" in msg


def test_typo_inside_nested_data_source(write_config):
    path = write_config(tiny_run_dict(data={"name": "tokens", "tokenizer": "t", "source": {"name": "mnist", "chanels": 1}}))
    with pytest.raises(ConfigError, match=r"'data\.source\.chanels'.*" + str(path).replace(".", r"\.")):
        load_run_config(path)


def test_wrong_type_names_key_and_file(write_config):
    path = write_config(tiny_run_dict(optim={"lr": "fast"}))
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert "'optim.lr'" in str(err.value) and str(path) in str(err.value) and "number" in str(err.value)


@pytest.mark.parametrize(
    "section, values, needle",
    [
        ("train", {"mixed_precision": "fp8"}, "train.mixed_precision"),
        ("data", {"channels": 2}, "channels must be 1"),
        ("optim", {"schedule": "step"}, "optim.schedule"),
        ("train", {"ema_decay": 1.0}, "ema_decay"),
    ],
)
def test_invalid_values(write_config, section, values, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_run_config(write_config(tiny_run_dict(**{section: values})))


def test_missing_task_name_and_missing_file(write_config, tmp_path):
    with pytest.raises(ConfigError, match="task"):
        load_run_config(write_config({"data": {"name": "mnist"}}))
    with pytest.raises(ConfigError, match="task.name"):
        load_run_config(write_config({"task": {"hidden": 3}}))
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "absent.yaml")


def test_overrides_are_yaml_parsed_and_validated(write_config):
    path = write_config(tiny_run_dict())
    cfg = load_run_config(path, ["train.steps=7", "optim.betas=[0.8, 0.99]", "data.val_split=null", "task.hidden=4",
                                 "train.mixed_precision=bf16"])
    assert cfg.train.steps == 7 and cfg.optim.betas == (0.8, 0.99) and cfg.data.val_split is None
    assert cfg.task_options["hidden"] == 4 and cfg.train.mixed_precision == "bf16"
    with pytest.raises(ConfigError, match=r"'train\.stepz'.*--set train\.stepz=3"):
        load_run_config(path, ["train.stepz=3"])
    with pytest.raises(ConfigError, match=r"'train\.steps'.*expected an integer"):
        load_run_config(path, ["train.steps=many"])


def test_override_syntax_errors():
    assert parse_override("a.b= 3") == (["a", "b"], 3)
    for bad in ("train.steps", "=3", "train..steps=1"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_override(bad)
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": {"steps": 3}}, ["train.steps.x=1"])
    assert apply_overrides({}, ["data.source.name=mnist"]) == {"data": {"source": {"name": "mnist"}}}
