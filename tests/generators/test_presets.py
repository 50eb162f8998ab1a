"""Named presets: the published shapes, overrides win, a preset of another family is refused, and the
interop loaders read their head counts from the same table."""

import pytest

from arforge.config import ConfigError, from_dict
from arforge.generators import MARConfig, RasterConfig
from arforge.generators.presets import PRESETS, presets_of, resolve_preset


def test_gpt_presets_are_llamagens_shapes_and_overrides_win():
    cfg = from_dict(RasterConfig, resolve_preset("raster", {"preset": "gpt_xl", "vocab_size": 16,
                                                            "backbone": {"resid_dropout_p": 0.0}}))
    assert (cfg.backbone.dim, cfg.backbone.n_layer, cfg.backbone.n_head) == (1280, 36, 20)
    assert cfg.backbone.resid_dropout_p == 0.0 and cfg.vocab_size == 16
    cfg = from_dict(RasterConfig, resolve_preset("raster", {"preset": "gpt_b", "backbone": {"n_layer": 2}}))
    assert (cfg.backbone.dim, cfg.backbone.n_layer) == (768, 2)
    assert {"gpt_b", "gpt_l", "gpt_xl", "gpt_xxl", "gpt_3b"} <= set(presets_of("raster"))


def test_var_and_mar_presets():
    assert {f"var_d{d}" for d in (16, 20, 24, 30)} <= set(presets_of("var"))
    assert resolve_preset("var", {"preset": "var_d20", "vocab_size": 8}) == {"depth": 20, "vocab_size": 8}
    mar = from_dict(MARConfig, resolve_preset("mar", {"preset": "mar_l"}))
    assert (mar.encoder_embed_dim, mar.encoder_depth, mar.encoder_num_heads, mar.diffloss_d, mar.diffloss_w) == (1024, 16, 16, 8, 1280)
    assert {"mar_b", "mar_l", "mar_h"} <= set(presets_of("mar"))


def test_unknown_or_foreign_presets_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown model preset 'model.preset: gpt_q'.*gpt_b"):
        resolve_preset("raster", {"preset": "gpt_q"})
    with pytest.raises(ConfigError, match="var_d16 is a var preset; this model takes raster presets"):
        resolve_preset("raster", {"preset": "var_d16"})


def test_a_yaml_preset_builds_the_model_through_the_generator_task():
    from arforge.generators import VARGenerator
    from arforge.train.tasks.generator import GeneratorTrainTask

    task = GeneratorTrainTask.from_config({"family": "raster", "model": {"preset": "gpt_b", "backbone": {"n_layer": 1}}},
                                          {"codebook_size": 8, "grid_shape": [2, 2], "num_classes": 2})
    assert task.generator.config.backbone.dim == 768 and task.generator.config.backbone.n_head == 12
    var = VARGenerator.from_config_dict({"preset": "var_d16", "vocab_size": 8, "patch_nums": [1, 2], "latent_channels": 4,
                                         "num_classes": 2})
    assert (var.config.backbone.dim, var.config.backbone.n_layer, var.config.backbone.n_head) == (1024, 16, 16)


def test_interop_head_tables_come_from_the_presets():
    from arforge.interop.llamagen_gpt import GPT_PRESETS
    from arforge.interop.mar import MAR_HEADS_BY_WIDTH

    assert GPT_PRESETS[(768, 12)] == ("gpt_b", 12) and GPT_PRESETS[(3200, 24)] == ("gpt_3b", 32)
    assert MAR_HEADS_BY_WIDTH == {768: 12, 1024: 16, 1280: 16}
    assert all(PRESETS.get(n).description for n in PRESETS.names())
