"""The reverse-diffusion loop and the one-step clean-latent estimate, as plain functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from ..errors import UserError
from .denoiser import Denoiser

Generator = torch.Generator | list[torch.Generator] | None


def step_options(scheduler: SchedulerMixin, eta: float | None, generator: Generator) -> dict:
    """Keyword arguments for `scheduler.step`: eta only where the sampler has one (DDIM)."""
    accepted = inspect.signature(scheduler.step).parameters
    options = {}
    if eta is not None:
        if "eta" not in accepted:
            raise UserError(f"eta only applies to the ddim sampler, not {type(scheduler).__name__}: leave eta unset")
        options["eta"] = eta
    if "generator" in accepted:
        options["generator"] = generator
    return options


@torch.no_grad()
def sample_latents(
    denoiser: Denoiser,
    scheduler: SchedulerMixin,
    shape: tuple[int, int, int, int],
    condition: torch.Tensor | None = None,
    num_inference_steps: int = 50,
    eta: float | None = None,
    generator: Generator = None,
    progress_bar: Callable[[Iterable], Iterable] | None = None,
    start: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Run the sampler from pure noise to a clean latent of `shape`, in the denoiser's scaled space.

    `condition` (SR) is the scaled encoded LR latent, same spatial size as `shape`. With a list of
    generators, one per sample, each sample is fixed by its own seed whatever the batch. The loop
    runs in float32; under an active autocast only the UNet runs in reduced precision.
    With `strength` < 1 the loop starts from `start` noised to that fraction of the schedule and
    runs only the remaining steps (diffusers' img2img convention): it skips the high-noise steps,
    where an eps-predicting denoiser's small errors are amplified most.
    """
    if num_inference_steps < 1:
        raise UserError(f"the number of steps must be at least 1, got {num_inference_steps}")
    schedule_length = scheduler.config.num_train_timesteps
    if num_inference_steps > schedule_length:
        raise UserError(f"{num_inference_steps} steps is more than the {schedule_length} the model was trained with: use at most {schedule_length}")
    if not 0.0 < strength <= 1.0:
        raise UserError(f"strength must be in (0, 1], got {strength}")
    if strength < 1.0 and start is None:
        raise ValueError("a strength below 1 needs a start latent")
    if isinstance(generator, list) and len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}: give one per sample")
    device = denoiser.device
    options = step_options(scheduler, eta, generator)
    scheduler.set_timesteps(num_inference_steps, device=device)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
    timesteps = scheduler.timesteps
    if strength < 1.0:
        skipped = num_inference_steps - max(1, round(num_inference_steps * strength))
        timesteps = timesteps[skipped * scheduler.order :]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(skipped * scheduler.order)
        latents = scheduler.add_noise(start.float(), latents, timesteps[:1])
    else:
        latents = latents * scheduler.init_noise_sigma
    for t in progress_bar(timesteps) if progress_bar is not None else timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        noise_pred = denoiser(model_input, t, condition).float()
        latents = scheduler.step(noise_pred, t, latents, **options).prev_sample
    return latents


def predict_clean_latent(
    noisy_latent: torch.Tensor, model_output: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, prediction_type: str = "epsilon"
) -> torch.Tensor:
    """One-step estimate of z0 from z_t and the model's output, per sample (differentiable):
    epsilon: (z_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t); v_prediction: sqrt(a_t) z_t - sqrt(1 - a_t) v_hat."""
    alpha = alphas_cumprod.to(noisy_latent.device, torch.float32)[timesteps.to(noisy_latent.device)]
    alpha = alpha.reshape(-1, *[1] * (noisy_latent.dim() - 1))
    if prediction_type == "epsilon":
        return (noisy_latent - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
    if prediction_type == "v_prediction":
        return alpha.sqrt() * noisy_latent - (1 - alpha).sqrt() * model_output
    if prediction_type == "sample":
        return model_output
    raise ValueError(f"unknown prediction type {prediction_type!r}")
