"""Load any saved arforge model by the type its folder records: the one module that imports every
family (generators and tokenizers), so that :mod:`arforge.pretrained` stays a leaf."""

from __future__ import annotations

from pathlib import Path

import torch

import arforge.generators  # noqa: F401  (registers the generator families)
import arforge.tokenizers  # noqa: F401  (registers the tokenizers)
from arforge.pretrained import MODEL_CLASSES, CheckpointError, read_config_file, resolve_model_dir


def load_pretrained(directory: str | Path, kind: str | None = None, map_location: str | torch.device = "cpu"):
    """Load any arforge model from ``directory`` (a saved model folder); if ``kind`` is given
    (``"generator"`` / ``"tokenizer"``) the model must be of that kind (:class:`CheckpointError` otherwise)."""
    meta = read_config_file(directory)
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(
            f"{directory} holds a {meta['type']} {meta['kind']}, but a {kind} checkpoint is needed here"
        )
    key = f"{meta['kind']}/{meta['type']}"
    if key not in MODEL_CLASSES:
        raise CheckpointError(f"{directory}: unknown model '{key}'; known: {', '.join(MODEL_CLASSES.names())} "
                              f"(a plug-in type needs its module: arforge ... --import MODULE)")
    return MODEL_CLASSES.get(key).from_pretrained(directory, map_location=map_location)


def load_generator_and_tokenizer(checkpoint: str | Path, tokenizer: str | Path | None, device: torch.device):
    """Load a generator and the tokenizer it was trained with (``extra.tokenizer_dir`` unless given)."""
    gen_dir = resolve_model_dir(checkpoint)
    generator = load_pretrained(gen_dir, kind="generator").to(device).eval()
    tok_path = tokenizer or (generator.pretrained_extra or {}).get("tokenizer_dir")
    if tok_path is None:
        raise CheckpointError(f"{gen_dir} does not record its tokenizer: pass --tokenizer DIR")
    tok_dir = resolve_model_dir(tok_path)
    if read_config_file(tok_dir)["kind"] != "tokenizer":
        raise CheckpointError(f"--tokenizer {tok_dir} is not a tokenizer checkpoint")
    tok = load_pretrained(tok_dir, kind="tokenizer").to(device).eval()
    if getattr(tok, "is_continuous", False):
        want = getattr(generator.config, "latent_channels", None)
        if want != tok.latent_channels:
            raise CheckpointError(f"tokenizer {tok_dir} has {tok.latent_channels} latent channels but generator {gen_dir} "
                                  f"expects {want}")
    elif tok.codebook_size != getattr(generator, "vocab_size", None):
        raise CheckpointError(
            f"tokenizer {tok_dir} has {tok.codebook_size} codes but generator {gen_dir} expects {generator.vocab_size}"
        )
    return generator, tok
