"""Images <-> tokens: the LlamaGen-compatible VQ tokenizer, its quantizer, discriminator and losses;
the continuous KL tokenizer (``diffusers.AutoencoderKL``); VAR's multi-scale residual VQ tokenizer;
the causal video VQ tokenizer.

Importing this package registers ``tokenizer/vq``, ``tokenizer/kl``, ``tokenizer/msvq`` and
``tokenizer/video_vq`` for :func:`arforge.auto.load_pretrained`.
"""

from arforge.tokenizers.kl import KLConfig, KLOutput, KLTokenizer
from arforge.tokenizers.discriminator import DiscriminatorConfig, PatchGANDiscriminator
from arforge.tokenizers.multiscale import MultiScaleVQConfig, MultiScaleVQTokenizer
from arforge.tokenizers.multiscale_quantizer import MultiScaleQuantizer
from arforge.tokenizers.quantizer import QuantizerOutput, VectorQuantizer, usage_stats
from arforge.tokenizers.video import VideoVQConfig, VideoVQTokenizer
from arforge.tokenizers.vq import VQConfig, VQOutput, VQTokenizer

__all__ = [
    "DiscriminatorConfig",
    "KLConfig",
    "KLOutput",
    "KLTokenizer",
    "MultiScaleQuantizer",
    "MultiScaleVQConfig",
    "MultiScaleVQTokenizer",
    "PatchGANDiscriminator",
    "QuantizerOutput",
    "VQConfig",
    "VQOutput",
    "VQTokenizer",
    "VectorQuantizer",
    "VideoVQConfig",
    "VideoVQTokenizer",
    "usage_stats",
]
