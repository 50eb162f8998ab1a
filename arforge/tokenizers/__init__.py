"""Images <-> tokens: the LlamaGen-compatible VQ tokenizer, its quantizer, discriminator and losses.

Importing this package registers ``tokenizer/vq`` for :func:`arforge.pretrained.load_pretrained`.
"""

from arforge.tokenizers.discriminator import DiscriminatorConfig, PatchGANDiscriminator
from arforge.tokenizers.quantizer import QuantizerOutput, VectorQuantizer, usage_stats
from arforge.tokenizers.vq import VQConfig, VQOutput, VQTokenizer

__all__ = [
    "DiscriminatorConfig",
    "PatchGANDiscriminator",
    "QuantizerOutput",
    "VQConfig",
    "VQOutput",
    "VQTokenizer",
    "VectorQuantizer",
    "usage_stats",
]
