"""Models saved by an earlier release still load, strictly, and compute what they computed then."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arforge.auto import load_pretrained

SAVED = Path(__file__).resolve().parent / "fixtures" / "saved_v0_1"
TYPES = {"raster": "RasterGenerator", "nbp": "NBPGenerator", "nar": "NARGenerator", "raster_flow": "RasterFlowGenerator",
         "var": "VARGenerator", "flowar": "FlowARGenerator", "xar": "XARGenerator", "mar": "MARGenerator",
         "vq": "VQTokenizer", "kl": "KLTokenizer", "msvq": "MultiScaleVQTokenizer", "video_vq": "VideoVQTokenizer"}


@pytest.mark.parametrize("name", sorted(TYPES))
def test_models_saved_by_release_0_1_load_strictly(name):
    model = load_pretrained(SAVED / name)
    assert type(model).__name__ == TYPES[name]
    saved = load_file(str(SAVED / name / "model.safetensors"))
    assert set(saved) == set(model.state_dict())


def test_models_saved_by_release_0_1_compute_the_same_outputs():
    out = load_file(str(SAVED / "outputs.safetensors"))
    tokens, labels = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]]), torch.tensor([0, 1])
    with torch.no_grad():
        for name in ("raster", "nbp", "nar"):
            model = load_pretrained(SAVED / name).eval()
            torch.testing.assert_close(model(tokens, labels), out[f"{name}.logits"], rtol=1e-5, atol=1e-5)
        vq = load_pretrained(SAVED / "vq").eval()
        torch.testing.assert_close(vq.decode(torch.tensor([[[1, 2], [3, 4]]])), out["vq.images"], rtol=1e-5, atol=1e-5)
        kl = load_pretrained(SAVED / "kl").eval()
        torch.testing.assert_close(kl.encode(out["kl.input"]), out["kl.latents"], rtol=1e-5, atol=1e-5)
