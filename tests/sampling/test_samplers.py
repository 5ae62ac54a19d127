import math

import pytest
import torch

from arbiscale.errors import UserError
from arbiscale.pipelines.upscale import PAPER_SAMPLING
from arbiscale.sampling import SAMPLERS, make_scheduler, predict_clean_latent, sample_latents, training_schedule_of
from arbiscale.sampling.schedulers import OBJECTIVES


class GaussianOracle(torch.nn.Module):
    """The exact noise prediction E[eps | z_t] when clean latents are N(mean, std^2) per element.

    With the condition given (SR), the condition is the mean: a sampler that drops it misses the target.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("alphas_cumprod", alphas_cumprod.float())
        self.mean, self.std = mean, std

    @property
    def device(self) -> torch.device:
        return self.alphas_cumprod.device

    def forward(self, noisy, timestep, condition=None):
        alpha = self.alphas_cumprod[timestep]
        mean = self.mean if condition is None else condition
        return (1 - alpha).sqrt() * (noisy - alpha.sqrt() * mean) / (alpha * self.std**2 + 1 - alpha)


def test_training_schedule_is_compvis_linear():
    expected = torch.linspace(math.sqrt(0.0015), math.sqrt(0.0195), 1000, dtype=torch.float64) ** 2
    for name in SAMPLERS:
        scheduler = make_scheduler(name)
        assert scheduler.config.num_train_timesteps == 1000
        assert scheduler.config.prediction_type == "epsilon"
        assert torch.allclose(scheduler.betas.double(), expected, rtol=1e-5)


def test_unknown_sampler_lists_the_names():
    with pytest.raises(UserError, match="ddpm, ddim, dpm-solver\\+\\+, unipc"):
        make_scheduler("euler")


def test_schedule_of_a_saved_scheduler_carries_over_to_any_sampler():
    base = make_scheduler("ddpm", beta_end=0.02)
    assert make_scheduler("unipc", **training_schedule_of(base)).config.beta_end == 0.02
    assert make_scheduler("dpm-solver++").config.algorithm_type == "dpmsolver++"


@pytest.mark.parametrize(
    ("name", "steps", "eta"),
    [
        ("ddpm", 50, None),
        ("ddim", 50, 0.0),
        ("dpm-solver++", 25, None),
        ("unipc", 25, None),
        (PAPER_SAMPLING["sampler"], PAPER_SAMPLING["num_inference_steps"], PAPER_SAMPLING["eta"]),
    ],
)
def test_every_sampler_reaches_the_data_distribution(name, steps, eta):
    # Latents are not bounded: a mean of 3 fails any sampler that clips its clean estimate to [-1, 1].
    # The spread ends a little narrow at few steps: the last step returns E[z0 | z_t] at a small but
    # non-zero noise level (0.455 for 50 DDIM steps, 0.479 at the paper's 200), hence the loose bound.
    scheduler = make_scheduler(name)
    oracle = GaussianOracle(scheduler.alphas_cumprod, mean=3.0, std=0.5)
    generator = torch.Generator().manual_seed(0)
    samples = sample_latents(oracle, scheduler, (2048, 1, 4, 4), num_inference_steps=steps, eta=eta, generator=generator)
    assert samples.mean().item() == pytest.approx(3.0, abs=0.05)
    assert samples.std().item() == pytest.approx(0.5, rel=0.15)


def test_sr_sampling_follows_its_condition():
    scheduler = make_scheduler("ddim")
    oracle = GaussianOracle(scheduler.alphas_cumprod, mean=0.0, std=0.1)
    condition = torch.linspace(-2, 2, 16).reshape(1, 1, 4, 4).expand(256, 1, 4, 4)
    samples = sample_latents(oracle, scheduler, tuple(condition.shape), condition, 20, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(samples.mean(0), condition[0], atol=0.05)


def test_one_generator_per_sample_fixes_each_sample_whatever_the_batch():
    scheduler = make_scheduler("ddim")
    oracle = GaussianOracle(scheduler.alphas_cumprod, mean=0.0, std=1.0)

    def run(seeds):
        return sample_latents(oracle, make_scheduler("ddim"), (len(seeds), 2, 4, 4), num_inference_steps=5, eta=1.0, generator=[torch.Generator().manual_seed(s) for s in seeds])

    pair = run([1, 2])
    assert torch.allclose(pair[0], run([1])[0], atol=1e-6)
    assert torch.allclose(pair[1], run([2])[0], atol=1e-6)
    assert (pair[0] - pair[1]).abs().max() > 0.1


def test_eta_only_for_ddim_and_steps_at_least_one():
    scheduler = make_scheduler("unipc")
    oracle = GaussianOracle(scheduler.alphas_cumprod, mean=0.0, std=1.0)
    with pytest.raises(UserError, match="eta"):
        sample_latents(oracle, scheduler, (1, 1, 4, 4), num_inference_steps=2, eta=0.5)
    with pytest.raises(UserError, match="steps"):
        sample_latents(oracle, scheduler, (1, 1, 4, 4), num_inference_steps=0)


def test_predict_clean_latent_inverts_the_forward_process_per_sample():
    scheduler = make_scheduler("ddpm")
    torch.manual_seed(0)
    clean = torch.randn(4, 3, 5, 7)
    noise = torch.randn(4, 3, 5, 7, requires_grad=True)
    timesteps = torch.tensor([0, 10, 500, 999])
    noisy = scheduler.add_noise(clean, noise.detach(), timesteps)
    estimate = predict_clean_latent(noisy, noise, scheduler.alphas_cumprod, timesteps)
    assert torch.allclose(estimate, clean, atol=1e-4)
    estimate.sum().backward()
    alpha = scheduler.alphas_cumprod[timesteps]
    expected_grad = -((1 - alpha) / alpha).sqrt().reshape(-1, 1, 1, 1).expand_as(noise)
    assert torch.allclose(noise.grad, expected_grad, rtol=1e-4)


class CountingOracle(GaussianOracle):
    def forward(self, noisy, timestep, condition=None):
        self.calls.append(int(timestep))
        return super().forward(noisy, timestep, condition)


@pytest.mark.parametrize("name", ["ddim", "dpm-solver++", "unipc"])
def test_partial_strength_runs_the_low_noise_tail_and_still_reaches_the_target(name):
    """Strength 0.4 of 20 steps: 8 steps, all at the low-noise end; started from a latent off by 0.3,
    the Gaussian posterior mean is still reached (and the start's offset is forgotten)."""
    scheduler = make_scheduler(name)
    oracle = CountingOracle(scheduler.alphas_cumprod, mean=0.0, std=0.1)
    oracle.calls = []
    condition = torch.linspace(-2, 2, 16).reshape(1, 1, 4, 4).expand(512, 1, 4, 4)
    samples = sample_latents(oracle, scheduler, tuple(condition.shape), condition, 20, generator=torch.Generator().manual_seed(0), start=condition + 0.3, strength=0.4)
    assert len(oracle.calls) == 8 and max(oracle.calls) < 0.45 * 1000
    assert torch.allclose(samples.mean(0), condition[0], atol=0.05)


def test_strength_out_of_range_or_without_a_start_is_refused():
    scheduler = make_scheduler("ddim")
    oracle = GaussianOracle(scheduler.alphas_cumprod, mean=0.0, std=1.0)
    with pytest.raises(UserError, match="strength"):
        sample_latents(oracle, scheduler, (1, 1, 4, 4), num_inference_steps=5, start=torch.zeros(1, 1, 4, 4), strength=0.0)
    with pytest.raises(ValueError, match="start"):
        sample_latents(oracle, scheduler, (1, 1, 4, 4), num_inference_steps=5, strength=0.5)


def test_v_zero_snr_objective_reaches_pure_noise_and_its_clean_estimate_is_exact():
    scheduler = make_scheduler("ddpm", **OBJECTIVES["v-zero-snr"])
    assert scheduler.alphas_cumprod[-1].item() == pytest.approx(0.0, abs=1e-12)  # zero terminal SNR
    assert make_scheduler("ddim", **training_schedule_of(scheduler)).config.rescale_betas_zero_snr
    torch.manual_seed(0)
    clean, noise = torch.randn(4, 3, 5, 7), torch.randn(4, 3, 5, 7)
    timesteps = torch.tensor([0, 10, 500, 999])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    velocity = scheduler.get_velocity(clean, noise, timesteps)
    estimate = predict_clean_latent(noisy, velocity, scheduler.alphas_cumprod, timesteps, "v_prediction")
    assert torch.allclose(estimate, clean, atol=1e-4)  # including t = T, where the noisy latent holds no signal
    assert torch.equal(predict_clean_latent(noisy, clean, scheduler.alphas_cumprod, timesteps, "sample"), clean)


@pytest.mark.parametrize("steps", range(1, 13))
def test_ddim_with_full_noise_stays_finite_from_pure_noise_on_the_zero_snr_schedule(steps):
    """eta 1 from t = T (alpha_T = 0): diffusers' DDIM took the square root of a rounding-negative number
    at 3 and 5 steps and returned NaN; ours clamps the step's noise to what the step allows."""
    scheduler = make_scheduler("ddim", **OBJECTIVES["v-zero-snr"])
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    for t in scheduler.timesteps:
        sample = scheduler.step(torch.randn(sample.shape, generator=generator), t, sample, eta=1.0, generator=generator).prev_sample
    assert torch.isfinite(sample).all()
