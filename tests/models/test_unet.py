import pytest
import torch

from arbiscale.models import ImplicitAutoencoder, load_component
from arbiscale.models.unet import LatentDenoiser, measure_latent_scale
from arbiscale.presets import get_preset


@pytest.mark.parametrize("task", ["sr", "gen"])
def test_denoiser_channels_follow_the_task(task):
    denoiser = LatentDenoiser.from_preset("tiny", task)
    z = get_preset("tiny").autoencoder["latent_channels"]
    assert denoiser.unet.config.in_channels == (2 * z if task == "sr" else z)
    noisy = torch.randn(2, z, 6, 10)
    condition = torch.randn(2, z, 6, 10) if task == "sr" else None
    with torch.no_grad():
        eps = denoiser(noisy, torch.tensor([10, 900]), condition)
    assert eps.shape == noisy.shape


def test_sr_denoiser_uses_its_condition():
    torch.manual_seed(0)
    denoiser = LatentDenoiser.from_preset("tiny", "sr")
    noisy = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        first = denoiser(noisy, 500, torch.randn(1, 3, 8, 8))
        second = denoiser(noisy, 500, torch.randn(1, 3, 8, 8))
    assert (first - second).abs().max() > 1e-4


def test_condition_required_for_sr_and_refused_for_generation():
    with pytest.raises(ValueError, match="condition"):
        LatentDenoiser.from_preset("tiny", "sr")(torch.randn(1, 3, 8, 8), 1)
    with pytest.raises(ValueError, match="no condition"):
        LatentDenoiser.from_preset("tiny", "gen")(torch.randn(1, 3, 8, 8), 1, torch.randn(1, 3, 8, 8))


def test_size_multiple_is_the_unet_downsampling():
    assert LatentDenoiser.from_preset("tiny", "gen").size_multiple == 2
    assert LatentDenoiser.from_preset("small", "sr").size_multiple == 4


def test_task_and_latent_scale_survive_save_and_load(tmp_path):
    denoiser = LatentDenoiser.from_preset("tiny", "sr")
    denoiser.set_latent_scale(0.1875)
    denoiser.save_pretrained(tmp_path)
    loaded = load_component(LatentDenoiser, tmp_path)
    assert loaded.config.task == "sr"
    assert loaded.config.latent_scale == pytest.approx(0.1875)
    assert tuple(loaded.config.sample_size) == get_preset("tiny").latent_size
    for key, value in denoiser.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_latent_scale_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError):
        LatentDenoiser.from_preset("tiny", "gen").set_latent_scale(bad)


def test_measured_scale_gives_unit_std_from_one_tensor_or_batches():
    torch.manual_seed(0)
    latents = torch.randn(64, 3, 8, 8) * 4.5 + 2.0
    scale = measure_latent_scale(latents)
    assert scale == pytest.approx(1 / latents.std().item(), rel=1e-6)
    assert (latents * scale).std().item() == pytest.approx(1.0, rel=1e-6)
    assert measure_latent_scale(latents.split(5)) == pytest.approx(scale, rel=1e-9)


def test_measure_latent_scale_of_real_encoder_latents():
    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**get_preset("tiny").autoencoder)
    with torch.no_grad():
        latents = autoencoder.encode(torch.rand(4, 3, 16, 16) * 2 - 1)
    assert (latents * measure_latent_scale(latents)).std().item() == pytest.approx(1.0, rel=1e-5)


def test_constant_latents_cannot_be_scaled():
    with pytest.raises(ValueError, match="no spread"):
        measure_latent_scale(torch.ones(2, 3, 4, 4))


def test_residual_denoiser_diffuses_the_scaled_residual_and_inverts_it():
    denoiser = LatentDenoiser.from_preset("tiny", "sr", residual=True)
    denoiser.set_residual_scale(4.0)
    latent, condition = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    sample = denoiser.diffusion_target(latent, condition)
    assert torch.allclose(sample, (latent - condition) * 4.0)
    assert torch.allclose(denoiser.latent_from(sample, condition), latent, atol=1e-6)
    # a plain denoiser diffuses the latent itself
    plain = LatentDenoiser.from_preset("tiny", "sr")
    assert plain.diffusion_target(latent, condition) is latent and plain.latent_from(latent, condition) is latent


def test_residual_needs_a_condition_and_survives_save_and_load(tmp_path):
    with pytest.raises(ValueError, match="residual"):
        LatentDenoiser.from_preset("tiny", "gen", residual=True)
    denoiser = LatentDenoiser.from_preset("tiny", "sr", residual=True)
    denoiser.set_residual_scale(2.5)
    denoiser.save_pretrained(tmp_path / "denoiser")
    loaded = load_component(LatentDenoiser, tmp_path / "denoiser")
    assert loaded.config.residual and loaded.config.residual_scale == 2.5
