import pytest
import torch

from arbiscale.training.alignment import alignment_loss, clipped_snr, sample_weights


def test_each_sample_keeps_its_own_snr_weight():
    noise = torch.zeros(2, 3, 4, 4)
    noise_pred = torch.stack([torch.full((3, 4, 4), 1.0), torch.full((3, 4, 4), 3.0)])  # MSE 1 and 9
    decoded = torch.zeros(2, 10, 3)
    target = torch.stack([torch.full((10, 3), 0.5), torch.full((10, 3), 2.0)])  # L1 0.5 and 2
    weights = torch.tensor([4.0, 0.25])
    loss, logs = alignment_loss(noise_pred, noise, decoded, target, weights)
    per_sample = torch.tensor([1.0 + 0.5, 9.0 + 2.0])
    assert loss.item() == pytest.approx((weights * per_sample).mean().item())
    # the authors' broadcast collapses to mean(w) * mean(loss), a different number here
    assert loss.item() != pytest.approx(weights.mean().item() * per_sample.mean().item())
    assert logs == {"loss_dm": pytest.approx(5.0), "loss_recon": pytest.approx(1.25)}


def test_weights_of_the_wrong_shape_are_refused():
    noise = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="one weight per sample"):
        alignment_loss(noise, noise, noise, noise, torch.ones(2, 1, 1, 1))


def test_snr_is_per_timestep_and_clipped():
    alphas_cumprod = torch.linspace(0.999, 0.001, 1000)
    timesteps = torch.tensor([0, 500, 999])
    snr = clipped_snr(alphas_cumprod, timesteps, max_snr=5.0)
    assert snr.shape == (3,)
    assert snr[0].item() == 5.0
    expected = alphas_cumprod[500] / (1 - alphas_cumprod[500])
    assert snr[1].item() == pytest.approx(min(expected.item(), 5.0))
    assert snr[2].item() == pytest.approx(0.001 / 0.999)


def test_uniform_weighting_keeps_the_noisiest_samples_that_clipped_snr_drops():
    """On a zero-terminal-SNR schedule the paper's weight is 0 at t = T, where sampling from pure noise starts."""
    alphas_cumprod = torch.linspace(0.999, 0.0, 1000)
    timesteps = torch.tensor([0, 500, 999])
    clipped = sample_weights("clipped-snr", alphas_cumprod, timesteps, max_snr=5.0)
    assert torch.equal(clipped, clipped_snr(alphas_cumprod, timesteps, max_snr=5.0)) and clipped[2].item() == 0.0
    assert torch.equal(sample_weights("uniform", alphas_cumprod, timesteps), torch.ones(3))
    with pytest.raises(ValueError, match="unknown weighting 'snr'"):
        sample_weights("snr", alphas_cumprod, timesteps)
