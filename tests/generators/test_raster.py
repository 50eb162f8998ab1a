import pytest
import torch

from arforge.config import ConfigError, from_dict
from arforge.generators import BackboneConfig, RasterConfig, RasterGenerator
from arforge.auto import load_pretrained
from arforge.pretrained import CheckpointError


def tiny_generator(**kw) -> RasterGenerator:
    cfg = RasterConfig(vocab_size=16, grid_size=(3, 4), num_classes=5, class_dropout_prob=0.1,
                       backbone=BackboneConfig(dim=32, n_layer=2, n_head=2, multiple_of=16), **kw)
    gen = RasterGenerator(cfg)
    torch.nn.init.normal_(gen.output.weight, std=0.5)  # zero-init head would make logits constant
    return gen.eval()


def test_kv_cached_decoding_matches_teacher_forcing():
    gen = tiny_generator()
    tokens = torch.randint(0, 16, (3, 12))
    labels = torch.tensor([0, 2, 4])
    with torch.no_grad():
        full = gen(tokens, labels)
        cache = gen.new_cache(3)
        steps = [gen.prefill(labels, cache)]
        for i in range(11):
            steps.append(gen.decode(tokens[:, i:i + 1], torch.full((3, 1), i), cache)[:, 0])
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_decode_several_tokens_at_once_matches_one_by_one():
    gen = tiny_generator()
    tokens = torch.randint(0, 16, (2, 12))
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        full = gen(tokens, labels)
        cache = gen.new_cache(2)
        gen.prefill(labels, cache)
        chunk = gen.decode(tokens[:, :6], torch.arange(6)[None].expand(2, 6), cache)
    torch.testing.assert_close(chunk, full[:, 1:7], atol=1e-5, rtol=1e-5)


def test_ungenerated_slots_are_masked_not_read_as_zeros():
    """Writing garbage in a slot that stays invalid must not change anything."""
    gen = tiny_generator()
    tokens = torch.randint(0, 16, (1, 12))
    labels = torch.tensor([2])
    with torch.no_grad():
        cache = gen.new_cache(1)
        gen.prefill(labels, cache)
        ref = gen.decode(tokens[:, :3], torch.arange(3)[None], cache)
        cache2 = gen.new_cache(1)
        gen.prefill(labels, cache2)
        gen.decode(tokens[:, 5:6], torch.tensor([[5]]), cache2)  # a token "from the future"
        cache2.invalidate(torch.tensor([[1 + 5]]))
        out = gen.decode(tokens[:, :3], torch.arange(3)[None], cache2)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


def test_label_dropout_only_in_training():
    gen = tiny_generator()
    labels = torch.zeros(2000, dtype=torch.long)
    emb = gen.cls_embedding
    gen.eval()
    assert torch.equal(emb(labels), emb.embedding_table(labels)[:, None])
    gen.train()
    dropped = (emb(labels)[:, 0] == emb.embedding_table.weight[5]).all(-1).float().mean().item()
    assert 0.07 < dropped < 0.13


def test_save_and_load_roundtrip(tmp_path):
    gen = tiny_generator()
    gen.save_pretrained(tmp_path / "g")
    loaded = load_pretrained(tmp_path / "g", kind="generator")
    tokens, labels = torch.randint(0, 16, (2, 12)), torch.tensor([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens, labels), gen(tokens, labels))
    with pytest.raises(CheckpointError, match="needed here"):
        load_pretrained(tmp_path / "g", kind="tokenizer")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "missing")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="backbone.n_layr"):
        from_dict(RasterConfig, {"backbone": {"n_layr": 2}})
    with pytest.raises(ConfigError, match="dim"):
        from_dict(RasterConfig, {"backbone": {"dim": "wide"}})
    with pytest.raises(ConfigError, match="divisible"):
        from_dict(RasterConfig, {"backbone": {"dim": 30, "n_head": 4}})
