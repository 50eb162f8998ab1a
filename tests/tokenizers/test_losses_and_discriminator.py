"""Reconstruction/GAN losses, PSNR and the PatchGAN discriminator."""

import math

import pytest
import torch

from arforge.config import ConfigError, from_dict
from arforge.tokenizers import DiscriminatorConfig, PatchGANDiscriminator
from arforge.tokenizers.losses import discriminator_loss, generator_adversarial_loss, psnr, reconstruction_loss


def test_reconstruction_losses():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert reconstruction_loss(a, b, "l1").item() == pytest.approx(1.0)
    assert reconstruction_loss(a, b, "l2").item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="use 'l1' or 'l2'"):
        reconstruction_loss(a, b, "l3")


def test_gan_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: relu(1 - real) = [0, 0.5], relu(1 + fake) = [0, 1]
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.5 * (0.25 + 0.5))
    assert generator_adversarial_loss(fake, "hinge").item() == pytest.approx(1.0)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = 0.5 * ((sp(-2.0) + sp(-0.5)) / 2 + (sp(-2.0) + sp(0.0)) / 2)
    assert discriminator_loss(real, fake, "non_saturating").item() == pytest.approx(expected, rel=1e-5)
    assert generator_adversarial_loss(fake, "non_saturating").item() == pytest.approx((sp(2.0) + sp(0.0)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="hinge"):
        generator_adversarial_loss(fake, "wgan")


def test_psnr_known_values():
    target = torch.full((2, 3, 4, 4), -1.0)  # black in [0, 1]
    recon = target.clone()
    recon[0] += 0.2  # 0.1 in [0, 1] -> mse 0.01 -> 20 dB
    recon[1] = 5.0  # clamped to 1.0 in [0, 1] -> mse 1 -> 0 dB
    torch.testing.assert_close(psnr(recon, target), torch.tensor([20.0, 0.0]), atol=1e-4, rtol=0)
    assert psnr(target, target)[0].item() == pytest.approx(100.0)  # mse clamped at 1e-10


def test_patchgan_shapes_and_norms():
    for norm in ("group", "batch", "none"):
        disc = PatchGANDiscriminator(1, DiscriminatorConfig(ndf=8, n_layers=2, norm=norm))
        logits = disc(torch.zeros(2, 1, 32, 32))
        assert logits.shape == (2, 1, 6, 6)  # 32 / 2**2 - 2
    assert PatchGANDiscriminator(3, DiscriminatorConfig(ndf=8, n_layers=3))(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 2, 2)
    disc = PatchGANDiscriminator(3, DiscriminatorConfig(ndf=20, n_layers=1))  # GroupNorm groups divide odd widths
    assert disc(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="too small"):
        PatchGANDiscriminator(3, DiscriminatorConfig(ndf=8, n_layers=3))(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ConfigError, match="'spectral' is not one of"):
        from_dict(DiscriminatorConfig, {"norm": "spectral"})
