"""Training task for VAR (next-scale) generators on cached multi-scale tokens.

YAML ``task:`` section::

    task:
      name: var_generator
      model:                     # VARConfig fields; vocabulary, pyramid and classes come from the data
        class_dropout_prob: 0.1
        depth: 4                 # VAR-d<depth> block defaults (width 64 depth, depth heads) ...
        backbone: {dim: 128, n_head: 4}   # ... with these fields overriding them (see NextScaleTrunk.from_config_dict)

Data: ``data.name: tokens`` with a :class:`~arforge.tokenizers.MultiScaleVQTokenizer`
(``data.tokenizer``). ``vocab_size``, ``latent_channels``, ``patch_nums`` and ``num_classes`` are
taken from the tokenizer and the data; a given value that disagrees is an error. The tokenizer is
kept frozen inside the task (its quantizer builds VAR's teacher-forcing inputs from the cached
tokens every step, as VAR does) and is not exported with the generator.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from arforge.config import ConfigError
from arforge.train.task import TASKS
from arforge.train.tasks.generator import GeneratorTrainTask, fill_from_data


@TASKS.register("var_generator")
class VARGeneratorTrainTask(GeneratorTrainTask):
    """Batches: ``{"codes": (B, 1, L) int64, "label": (B,) int64}``; loss and evaluation as
    :class:`GeneratorTrainTask`, on VAR's teacher-forcing inputs."""

    def __init__(self, generator, tokenizer, tokenizer_dir: str | None = None):
        super().__init__(generator, tokenizer_dir)
        self.tokenizer = tokenizer.eval().requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], data_info: Mapping[str, Any], source: str | None = None) -> "VARGeneratorTrainTask":
        from arforge.generators.var import VARGenerator
        from arforge.auto import load_pretrained
        from arforge.tokenizers.multiscale import MultiScaleVQTokenizer

        unknown = set(cfg) - {"model"}
        if unknown:
            raise ConfigError(f"unknown key(s) task.{', task.'.join(sorted(unknown))}{' in ' + source if source else ''}; "
                              "the var_generator task takes only task.model")
        tokenizer_dir = data_info.get("tokenizer_dir")
        if "codebook_size" not in data_info or not tokenizer_dir:
            raise ConfigError("the var_generator task trains on multi-scale token data: set data.name: tokens with "
                              "data.tokenizer: <multi-scale tokenizer dir>")
        tokenizer = load_pretrained(tokenizer_dir, kind="tokenizer")
        if not isinstance(tokenizer, MultiScaleVQTokenizer):
            raise ConfigError(f"{tokenizer_dir} is a {type(tokenizer).__name__}; VAR needs a multi-scale tokenizer "
                              "(task.name: msvq_tokenizer)")
        model_cfg = dict(cfg.get("model") or {})
        fill_from_data(model_cfg, {
            "vocab_size": int(data_info["codebook_size"]),
            "latent_channels": tokenizer.latent_channels,
            "patch_nums": list(tokenizer.patch_nums),
            "num_classes": int(data_info.get("num_classes", 1)),
        })
        generator = VARGenerator.from_config_dict(model_cfg, source=source)
        return cls(generator, tokenizer, str(tokenizer_dir))

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: never in training mode
        return self

    def _logits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens_BL = batch["codes"].flatten(1).long()
        with torch.no_grad():
            x_BLCv = self.tokenizer.quantize.teacher_forcing_inputs(self.tokenizer.quantize.split(tokens_BL))
        return self.generator(x_BLCv, batch["label"].long()), tokens_BL
