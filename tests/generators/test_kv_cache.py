import torch

from arforge.generators.kv_cache import KVCache


def test_mask_is_valid_and_causal():
    cache = KVCache(n_layers=1, batch_size=2, max_len=6, n_kv_heads=1, head_dim=2)
    cache.mark_valid(torch.tensor([[0, 1, 3], [0, 2, 4]]))
    mask = cache.attention_mask(torch.tensor([[3], [4]]))
    assert mask.shape == (2, 1, 1, 6)
    assert mask[0, 0, 0].tolist() == [True, True, False, True, False, False]
    assert mask[1, 0, 0].tolist() == [True, False, True, False, True, False]


def test_truncate_rolls_back_per_row_without_copies():
    cache = KVCache(n_layers=2, batch_size=2, max_len=5, n_kv_heads=1, head_dim=2)
    pos = torch.arange(5)[None].expand(2, 5)
    k = torch.randn(2, 5, 1, 2)
    buf_before = cache.k[0].data_ptr()
    cache.write(0, pos, k, k)
    cache.mark_valid(pos)
    cache.truncate(torch.tensor([2, 4]))
    assert cache.valid_BL.tolist() == [[True, True, False, False, False], [True, True, True, True, False]]
    assert cache.length_B().tolist() == [2, 4]
    assert cache.k[0].data_ptr() == buf_before
    torch.testing.assert_close(cache.k[0], k)


def test_write_scatters_per_row_positions():
    cache = KVCache(n_layers=1, batch_size=2, max_len=4, n_kv_heads=1, head_dim=1)
    k = torch.tensor([[[[1.0]]], [[[2.0]]]])  # (B=2, T=1, H=1, D=1)
    cache.write(0, torch.tensor([[3], [1]]), k, k)
    assert cache.k[0][0, :, 0, 0].tolist() == [0, 0, 0, 1]
    assert cache.k[0][1, :, 0, 0].tolist() == [0, 2, 0, 0]
