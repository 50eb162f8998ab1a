"""VQTrainTask: config validation, loss decrease on MNIST, one-loss GAN isolation, dead-code restarts, eval."""

from pathlib import Path

import pytest
import torch

from arforge.config import ConfigError
from arforge.tokenizers import VQTokenizer
from arforge.tokenizers.losses import discriminator_loss
from arforge.train.task import TASKS

import arforge.train.tasks  # noqa: F401  (registers the built-in tasks)
from arforge.train.tasks.vq import VQTrainTask

REPO = Path(__file__).resolve().parents[2]
TINY_TOK = dict(codebook_size=32, codebook_embed_dim=4, ch=16, norm_groups=8, encoder_ch_mult=[1, 1], decoder_ch_mult=[1, 1],
                z_channels=16, num_res_blocks=1, attn_levels=[])
DATA = {"image_size": 16, "channels": 1}


def _task(**overrides) -> VQTrainTask:
    torch.manual_seed(0)
    return VQTrainTask.from_config({"tokenizer": dict(TINY_TOK), **overrides}, DATA)


def _images(b=4, seed=0):
    return torch.rand(b, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_registered_and_built_from_config():
    assert TASKS.get("vq_tokenizer") is VQTrainTask
    task = _task()
    assert task.tokenizer.config.in_channels == 1  # taken from the data
    assert task.discriminator is None  # disc_weight defaults to 0
    assert isinstance(task.export_model(), VQTokenizer) and task.export_model() is task.tokenizer
    assert "restart_counts" in task.state_dict()


@pytest.mark.parametrize(
    "cfg, data, message",
    [
        ({"tokenizer": {**TINY_TOK, "in_channels": 3}}, DATA, "in_channels=3 disagrees with the data"),
        ({"tokenizer": TINY_TOK, "rec_los": "l1"}, DATA, "unknown config key 'task.rec_los'"),
        ({"tokenizer": {**TINY_TOK, "ch_mul": [1]}}, DATA, "unknown config key 'task.tokenizer.ch_mul'"),
        ({"tokenizer": TINY_TOK, "rec_loss": "l3"}, DATA, r"'l3' is not one of \['l1', 'l2'\]"),
        ({"tokenizer": TINY_TOK}, {"image_size": 15, "channels": 1}, "not divisible by the tokenizer's downsample factor"),
        ({"tokenizer": TINY_TOK, "disc_weight": 0.1, "discriminator": {"n_layers": 3}}, DATA, "n_layers=3 needs images of at least 24"),
        ({"tokenizer": TINY_TOK, "disc_weight": -1.0}, DATA, "disc_weight must be >= 0"),
    ],
)
def test_config_errors(cfg, data, message):
    with pytest.raises(ConfigError, match=message):
        VQTrainTask.from_config(cfg, data, source="run.yaml")


def _rectangles(n=16, size=16, seed=0):
    """Digit-like synthetic data: one random bright rectangle per image on a black background, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 1, size, size), -1.0)
    for i in range(n):
        top, left = torch.randint(0, size - 4, (2,), generator=g).tolist()
        h, w = torch.randint(3, size - max(top, left), (2,), generator=g).tolist()
        images[i, :, top:top + h, left:left + w] = 1.0
    return images


def test_loss_decreases_on_structured_images():
    images = _rectangles()
    task = _task(rec_loss="l2")
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for step in range(20):
        loss, metrics = task.training_loss({"image": images}, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(metrics) >= {"rec_loss", "codebook_loss", "commit_loss", "entropy_loss", "psnr", "batch_code_usage"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]


def test_generator_adversarial_term_never_moves_the_discriminator():
    task = _task(disc_weight=0.5, disc_start_step=0, discriminator={"ndf": 8, "n_layers": 2})
    images = _images()
    recon = task.tokenizer(images).recon
    # the generator term alone: gradients reach the tokenizer, none reach the discriminator
    task._generator_logits(recon).mean().backward()
    assert all(p.grad is None for p in task.discriminator.parameters())
    assert task.tokenizer.decoder.conv_out.weight.grad.abs().sum() > 0
    task.zero_grad(set_to_none=True)
    # the full loss: the discriminator's gradient is exactly that of disc_weight * discriminator loss
    loss, metrics = task.training_loss({"image": images}, step=0)
    assert {"gen_adv_loss", "disc_loss", "logits_real", "logits_fake"} <= set(metrics)
    loss.backward()
    full = [p.grad.clone() for p in task.discriminator.parameters()]
    task.zero_grad(set_to_none=True)
    recon = task.tokenizer(images).recon
    d_only = 0.5 * discriminator_loss(task.discriminator(images), task.discriminator(recon.detach()), "hinge")
    d_only.backward()
    for g_full, p in zip(full, task.discriminator.parameters()):
        torch.testing.assert_close(g_full, p.grad)


def test_gan_waits_for_disc_start_step():
    task = _task(disc_weight=0.5, disc_start_step=10, discriminator={"ndf": 8, "n_layers": 2})
    loss, before = task.training_loss({"image": _images()}, step=9)
    _, after = task.training_loss({"image": _images()}, step=10)
    assert "disc_loss" not in before and "disc_loss" in after
    # before the start every discriminator parameter still takes part (DDP), with a zero gradient
    loss.backward()
    assert all(p.grad is not None and not p.grad.any() for p in task.discriminator.parameters())


def test_dead_code_restart_revives_unused_codes():
    task = _task(dead_code_restart_every=2)
    task.train()
    images = _images(b=2)
    task.training_loss({"image": images}, step=0)
    used = task.restart_counts > 0
    n_dead = int((~used).sum())
    assert n_dead > 0
    before = task.tokenizer.quantize.embedding.weight.detach().clone()
    task.on_step_end(1)  # not due yet
    assert torch.equal(task.tokenizer.quantize.embedding.weight, before)
    task.on_step_end(2)
    after = task.tokenizer.quantize.embedding.weight.detach()
    changed = (after != before).any(dim=1)
    n_latents = 2 * 8 * 8
    assert int(changed.sum()) == min(n_dead, n_latents)
    assert not changed[used].any(), "codes in use must be kept"
    torch.testing.assert_close(after[changed].norm(dim=-1), torch.ones(int(changed.sum())))
    assert task.restart_counts.sum() == 0
    # deterministic: the same run restarts the same codes with the same vectors
    again = _task(dead_code_restart_every=2)
    again.train()
    again.training_loss({"image": images}, step=0)
    again.on_step_end(2)
    assert torch.equal(again.tokenizer.quantize.embedding.weight, task.tokenizer.quantize.embedding.weight)


def test_dead_code_restarts_stop_after_until_step():
    task = _task(dead_code_restart_every=2, dead_code_restart_until=2)
    task.train()
    task.training_loss({"image": _images(b=2)}, step=3)
    before = task.tokenizer.quantize.embedding.weight.detach().clone()
    task.on_step_end(4)
    assert torch.equal(task.tokenizer.quantize.embedding.weight, before)


def test_evaluate_reports_psnr_and_usage():
    task = _task()
    batches = [{"image": _images(b=3, seed=s)} for s in range(2)]
    task.train()
    metrics = task.evaluate(batches)
    assert task.tokenizer.training, "evaluate must restore the training mode"
    assert set(metrics) == {"val_psnr", "val_psnr_pooled", "val_rec_loss", "val_codebook_usage", "val_perplexity"}
    task.eval()
    with torch.no_grad():
        codes = torch.cat([task.tokenizer.encode(b["image"]) for b in batches])
    assert metrics["val_codebook_usage"] == pytest.approx(codes.unique().numel() / 32)
    assert metrics["val_psnr"] >= metrics["val_psnr_pooled"] - 1e-6  # Jensen: mean of logs vs log of mean
    assert task.evaluate([]) == {}


def test_mnist_recipe_is_valid():
    """configs/mnist_vq.yaml validates and gives the quickstart's 8x8 token grid on 32x32 MNIST."""
    from arforge.train.schema import load_run_config

    run = load_run_config(REPO / "configs" / "mnist_vq.yaml")
    assert run.task_name == "vq_tokenizer"
    data_info = {"image_size": run.data.image_size, "channels": run.data.channels}
    task = TASKS.get(run.task_name).from_config(run.task_options, data_info, source="mnist_vq.yaml")
    assert task.tokenizer.grid_shape(run.data.image_size) == (8, 8)
