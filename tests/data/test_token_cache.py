"""Token caches: build -> read round trip, dtypes, validation, and the ``tokens`` dataset (path or built next to the run)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from arforge.config import from_dict
from arforge.data import DataConfig, DataError, TokenDataset, build_dataset, build_token_cache, data_info
from arforge.pretrained import PretrainedMixin, register_model


class _Images(Dataset):
    """Deterministic random images in [-1, 1] with labels ``i % num_classes``."""

    def __init__(self, n: int = 10, size: int = 8, channels: int = 1, num_classes: int = 3):
        self.images = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.image_size, self.channels, self.num_classes = size, channels, num_classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": torch.tensor(i % self.num_classes)}


@dataclass
class PatchTokenizerConfig:
    patch: int = 4
    codebook_size: int = 16


@register_model
class PatchTokenizer(PretrainedMixin, nn.Module):
    """Dummy discrete tokenizer: code = patch mean brightness bucketed into ``codebook_size`` bins."""

    config_class = PatchTokenizerConfig
    model_kind = "tokenizer"
    model_type = "test_patch_tokenizer"

    def __init__(self, config: PatchTokenizerConfig = PatchTokenizerConfig(), image_size: int = 8):
        super().__init__()
        self.config = config
        self.codebook_size = config.codebook_size
        self.grid_shape = (image_size // config.patch, image_size // config.patch)
        self.scale = nn.Parameter(torch.ones(()))  # something to save
        self.calls = 0

    def encode(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        mean_Bhw = nn.functional.avg_pool2d(images_BCHW.mean(1, keepdim=True), self.config.patch)[:, 0]
        return ((mean_Bhw * self.scale + 1) / 2 * self.codebook_size).long().clamp(0, self.codebook_size - 1)


def test_round_trip_codes_labels_metadata(tmp_path):
    data, tok = _Images(), PatchTokenizer()
    path = build_token_cache(tok, data, tmp_path / "c.safetensors", batch_size=4, metadata={"tokenizer_dir": "/tok", "dataset": "rand"})
    raw = load_file(str(path))
    assert raw["codes"].dtype == torch.int16 and raw["codes"].shape == (10, 2, 2) and raw["labels"].dtype == torch.int64
    ds = TokenDataset(path)
    expected = tok.encode(data.images)
    assert len(ds) == 10 and ds.codebook_size == 16 and ds.grid_shape == (2, 2) and ds.tokenizer_dir == "/tok"
    for i in range(10):
        item = ds[i]
        assert item["codes"].dtype == torch.int64 and torch.equal(item["codes"], expected[i]) and int(item["label"]) == i % 3
    assert data_info(ds) == {"image_size": 8, "channels": 1, "num_classes": 3, "codebook_size": 16,
                             "grid_shape": [2, 2], "tokenizer_dir": "/tok"}
    assert ds.metadata["dataset"] == "rand" and json.loads(ds.metadata["grid_shape"]) == [2, 2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_large_codebooks_use_int32(tmp_path):
    tok = PatchTokenizer(PatchTokenizerConfig(codebook_size=40000))
    ds = TokenDataset(build_token_cache(tok, _Images(4), tmp_path / "big.safetensors"))
    assert ds.codes.dtype == torch.int32 and int(ds[0]["codes"].max()) < 40000


def test_bad_tokenizer_output_is_rejected(tmp_path):
    class OutOfRange(PatchTokenizer):
        def encode(self, images_BCHW):
            return super().encode(images_BCHW) + 100

    with pytest.raises(DataError, match="outside"):
        build_token_cache(OutOfRange(), _Images(4), tmp_path / "x.safetensors")

    class WrongGrid(PatchTokenizer):
        def encode(self, images_BCHW):
            return super().encode(images_BCHW)[:, :1]

    with pytest.raises(DataError, match="grid_shape"):
        build_token_cache(WrongGrid(), _Images(4), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_not_a_cache(tmp_path):
    from arforge.utils.io import save_safetensors

    save_safetensors({"codes": torch.zeros(2, 2)}, tmp_path / "plain.safetensors")
    with pytest.raises(DataError, match="not an arforge token cache"):
        TokenDataset(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError, match="token cache not found"):
        TokenDataset(tmp_path / "absent.safetensors")


def test_tokens_dataset_from_path(tmp_path):
    build_token_cache(PatchTokenizer(), _Images(6), tmp_path / "train.safetensors")
    build_token_cache(PatchTokenizer(), _Images(3), tmp_path / "val.safetensors")
    cfg = DataConfig(name="tokens", path=str(tmp_path / "train.safetensors"), val_path=str(tmp_path / "val.safetensors"))
    assert len(build_dataset(cfg, "train")) == 6 and len(build_dataset(cfg, "val")) == 3
    with pytest.raises(DataError, match="data.tokenizer"):
        build_dataset(DataConfig(name="tokens"), "train")


def test_tokens_built_next_to_the_run_and_reused(tmp_path):
    tok_dir = PatchTokenizer(image_size=8).save_pretrained(tmp_path / "tok")
    cfg = from_dict(DataConfig, {"name": "tokens", "tokenizer": str(tmp_path / "tok"),
                                 "source": {"name": "mnist", "image_size": 8, "channels": 1, "limit": 20, "batch_size": 8}})
    run = tmp_path / "run"
    with pytest.raises(DataError, match="needs a tokenizer"):  # data code never loads a model family itself
        build_dataset(cfg, "train", cache_dir=run)
    loaded = []

    def load_tokenizer(path):
        loaded.append(path)
        return PatchTokenizer.from_pretrained(path)

    ds = build_dataset(cfg, "train", cache_dir=run, load_tokenizer=load_tokenizer)
    cache = run / "tokens_mnist_train.safetensors"
    assert cache.is_file() and len(ds) == 20 and ds.grid_shape == (2, 2)
    info = data_info(ds)
    assert info["tokenizer_dir"] == str(tok_dir.resolve()) and info["num_classes"] == 10 and info["image_size"] == 8
    stamp = cache.stat().st_mtime_ns
    again = build_dataset(cfg, "train", cache_dir=run, load_tokenizer=load_tokenizer)  # same tokenizer + source: reused
    assert cache.stat().st_mtime_ns == stamp and torch.equal(again.codes, ds.codes) and len(loaded) == 1
    with torch.no_grad():  # new tokenizer weights -> the cache is rebuilt
        tok = PatchTokenizer.from_pretrained(tok_dir)
        tok.scale.fill_(0.5)
        tok.save_pretrained(tok_dir)
    rebuilt = build_dataset(cfg, "train", cache_dir=run, load_tokenizer=load_tokenizer)
    assert cache.stat().st_mtime_ns != stamp and not torch.equal(rebuilt.codes, ds.codes)
    with pytest.raises(DataError, match="needs a folder"):
        build_dataset(cfg, "train")
