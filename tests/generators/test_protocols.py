"""Every built-in family and tokenizer satisfies the protocols samplers rely on, and samplers name the
capability a model lacks instead of comparing class names."""

from pathlib import Path

import pytest
import torch

from arforge.auto import load_pretrained
from arforge.generators.protocols import Generator, TokenGenerator
from arforge.samplers import build_sampler
from arforge.tokenizers.protocol import Tokenizer

SAVED = Path(__file__).resolve().parents[1] / "fixtures" / "saved_v0_1"
TOKEN_FAMILIES = ["raster", "nbp", "nar"]
OTHER_FAMILIES = ["raster_flow", "var", "flowar", "xar", "mar"]
TOKENIZERS = ["vq", "kl", "msvq", "video_vq"]


@pytest.mark.parametrize("name", TOKEN_FAMILIES + OTHER_FAMILIES)
def test_generators_satisfy_the_generator_protocol(name):
    model = load_pretrained(SAVED / name)
    assert isinstance(model, Generator) and model.device == torch.device("cpu")
    assert isinstance(model, TokenGenerator) == (name in TOKEN_FAMILIES + ["raster_flow"])


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokenizers_satisfy_the_tokenizer_protocol(name):
    tok = load_pretrained(SAVED / name)
    assert isinstance(tok, Tokenizer) and tok.is_continuous == (name == "kl")


@pytest.mark.parametrize("sampler, family, message", [
    ("sjd", "nar", "sjd needs a raster order; this model \\(nar\\) uses neighbor"),
    ("zipar", "nbp", "zipar needs a raster order; this model \\(nbp\\) uses next_block"),
    ("zipar_sjd", "var", "zipar_sjd needs a raster order; this model \\(var\\) uses next_scale"),
    ("var", "flowar", "var needs a CategoricalHead; this model \\(flowar\\) has FlowHead"),
    ("flowar", "var", "flowar needs a FlowHead; this model \\(var\\) has CategoricalHead"),
    ("raster_flow", "raster", "raster_flow needs a FlowHead; this model \\(raster\\) has CategoricalHead"),
    ("xar", "raster", "xar needs a cells order; this model \\(raster\\) uses raster"),
    ("mar", "raster", "mar needs a masked order; this model \\(raster\\) uses raster"),
    ("ar", "mar", "ar needs a token generator with KV-cached prefill and decode passes; this model \\(mar\\) has no prefill"),
])
def test_samplers_name_the_capability_a_model_lacks(sampler, family, message):
    model = load_pretrained(SAVED / family).eval()
    with pytest.raises(ValueError, match=message):
        build_sampler(sampler).sample(model, torch.tensor([0, 1]))
