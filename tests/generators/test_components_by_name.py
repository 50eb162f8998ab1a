"""A config chooses the raster family's order and head from registries (model.order / model.head)."""

import pytest
import torch
from torch import nn

from arforge.config import ConfigError
from arforge.generators import RasterGenerator
from arforge.generators.heads import TOKEN_HEADS, register_token_head
from arforge.samplers import CFGSchedule
from arforge.samplers.ar import run_schedule
from arforge.samplers.context import start_decoding

TINY = {"vocab_size": 16, "grid_size": [3, 4], "num_classes": 3,
        "backbone": {"dim": 32, "n_layer": 1, "n_head": 2, "multiple_of": 16}}


def _decoded_equals_teacher_forced(gen: RasterGenerator) -> None:
    tokens = torch.randint(0, gen.vocab_size, (2, gen.num_tokens), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2])
    seen = torch.zeros(2, gen.num_tokens, gen.vocab_size)

    def pick(logits, step):
        seen[:, step.emit_E] = logits
        return tokens[:, step.emit_E]

    with torch.no_grad():
        run_schedule(gen, gen.order.decode_schedule(), start_decoding(gen, labels, CFGSchedule(1.0)), pick)
        torch.testing.assert_close(seen, gen(tokens, labels), atol=1e-4, rtol=1e-4)


def test_a_raster_model_trained_in_zipar_order_decodes_what_it_trains(tmp_path):
    gen = RasterGenerator.from_config_dict({**TINY, "order": {"name": "zipar", "options": {"window": 2}}}).eval()
    torch.nn.init.normal_(gen.output.weight, std=0.5)
    assert gen.order.name == "zipar" and gen.order.num_decode_steps() == 2 * 2 + 4
    _decoded_equals_teacher_forced(gen)
    gen.save_pretrained(tmp_path / "m")
    again = RasterGenerator.from_pretrained(tmp_path / "m")
    assert again.order.name == "zipar" and again.order.window == 2


def test_unknown_or_unfit_components_are_refused_with_the_key():
    with pytest.raises(ConfigError, match="unknown order 'model.order.name: spiral'.*raster"):
        RasterGenerator.from_config_dict({**TINY, "order": {"name": "spiral"}})
    with pytest.raises(ConfigError, match="model.order.options .* do not fit order 'zipar'"):
        RasterGenerator.from_config_dict({**TINY, "order": {"name": "zipar", "options": {"width": 2}}})
    with pytest.raises(ConfigError, match="use family nar"):
        RasterGenerator.from_config_dict({**TINY, "order": {"name": "neighbor"}})
    with pytest.raises(ConfigError, match="unknown head 'model.head.name: mixture'"):
        RasterGenerator.from_config_dict({**TINY, "head": {"name": "mixture"}})
    from arforge.generators import NARGenerator, NBPGenerator

    with pytest.raises(ConfigError, match="nar builds its own heads"):
        NARGenerator.from_config_dict({**TINY, "head": {"name": "categorical"}})
    with pytest.raises(ConfigError, match="nbp builds its own generation order"):
        NBPGenerator.from_config_dict({**TINY, "block_size": [1, 4], "order": {"name": "raster"}})


def test_a_registered_head_replaces_the_linear_one(tmp_path):
    if "test_low_rank" not in TOKEN_HEADS:
        @register_token_head("test_low_rank")
        class LowRankHead(nn.Module):
            def __init__(self, dim: int, vocab_size: int, rank: int = 4):
                super().__init__()
                self.down, self.up = nn.Linear(dim, rank, bias=False), nn.Linear(rank, vocab_size, bias=False)

            def forward(self, h):
                return self.up(self.down(h)).float()

    gen = RasterGenerator.from_config_dict({**TINY, "head": {"name": "test_low_rank", "options": {"rank": 3}}}).eval()
    assert gen.output.down.weight.shape == (3, 32) and "output.up.weight" in gen.state_dict()
    _decoded_equals_teacher_forced(gen)
    gen.save_pretrained(tmp_path / "m")
    torch.testing.assert_close(RasterGenerator.from_pretrained(tmp_path / "m").output.up.weight, gen.output.up.weight)
