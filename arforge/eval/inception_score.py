"""Inception Score (Salimans et al. 2016) from the Inception classifier's logits.

``IS = exp(E_x KL(p(y|x) || p(y)))`` per split, mean and std over ``splits`` equal splits. The
logits are the 2048 -> 1008 matrix product **without the bias** (``logits_unbiased``), as in the
original TF code (OpenAI improved-GAN, also used by the ADM evaluator) and in torch-fidelity.
Rows are shuffled with ``numpy.random.RandomState(seed).permutation`` before splitting, as
torch-fidelity does (seed 2020); ``shuffle=False`` with ``splits = N // 5000`` follows the ADM
evaluator instead.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_SEED = 2020


def inception_score(logits_NK: np.ndarray | torch.Tensor, splits: int = 10, shuffle: bool = True,
                    seed: int = DEFAULT_SEED) -> dict[str, float]:
    """``{"inception_score": mean, "inception_score_std": std}`` over ``splits`` splits of ``(N, K)`` logits."""
    logits = torch.as_tensor(np.asarray(logits_NK), dtype=torch.float64)
    n = logits.shape[0]
    if logits.ndim != 2 or n < splits:
        raise ValueError(f"need (N, K) logits with N >= splits ({splits}), got shape {tuple(logits.shape)}")
    if shuffle:
        logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    log_p = logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits: (i + 1) * n // splits]
        log_marginal = part.exp().mean(dim=0).log()
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return {"inception_score": float(np.mean(scores)), "inception_score_std": float(np.std(scores))}
