import pytest
import torch


@pytest.fixture
def decode_by_schedule():
    """``decode(gen, tokens_BN, labels)``: logits of every token gathered pass by pass along the
    generator's decode schedule through its KV cache (teacher-forcing the given tokens), to compare
    with the generator's one-pass teacher-forced ``forward``."""

    @torch.no_grad()
    def decode(gen, tokens_BN: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        B = tokens_BN.shape[0]
        cache = gen.new_cache(B)
        decoded = None
        for step in gen.order.decode_schedule():
            if step.feed_T.numel() == 0:
                out = gen.prefill(labels, cache)
            else:
                out = gen.decode(tokens_BN[:, step.feed_T], step.feed_T[None].expand(B, -1), cache)
            logits = gen.select_logits(out, step)
            if decoded is None:
                decoded = torch.zeros(B, tokens_BN.shape[1], logits.shape[-1])
            decoded[:, step.emit_E] = logits
        return decoded

    return decode
