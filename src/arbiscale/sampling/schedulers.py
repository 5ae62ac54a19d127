"""Noise schedules and samplers by name, all on the one training schedule the denoiser learned.

The paper's training schedule is CompVis LDM's: T = 1000, "linear" betas from 0.0015 to 0.0195 in
sqrt-space (diffusers `scaled_linear`), epsilon prediction. Its last step keeps a little signal
(SNR 0.005 at t = T), so a model trained on it never sees pure noise while sampling starts there:
the low frequencies (mean colour) it assumes at t = T are wrong (Lin et al. 2024). `OBJECTIVES`
adds the fix: v-prediction on the same betas rescaled to zero terminal SNR. Samplers never clip the
predicted clean sample: latents are not bounded to [-1, 1].
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..errors import UserError

TRAINING_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, prediction_type="epsilon")

# Named training objectives: the schedule settings that differ from TRAINING_SCHEDULE.
OBJECTIVES: dict[str, dict] = {"epsilon": {}, "v-zero-snr": dict(prediction_type="v_prediction", rescale_betas_zero_snr=True)}


class SafeDDIMScheduler(DDIMScheduler):
    """DDIM whose eta noise never exceeds what the step allows. From t = T of a zero-terminal-SNR
    schedule (alpha_T = 0) with eta = 1, sigma_t^2 equals 1 - alpha_prev exactly, and float rounding
    made diffusers' sqrt(1 - alpha_prev - sigma_t^2) NaN at some step counts (3 and 5 of 1000)."""

    def _get_variance(self, timestep: int, prev_timestep: int) -> torch.Tensor:
        variance = super()._get_variance(timestep, prev_timestep)
        alpha_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        return torch.minimum(variance, (1 - alpha_prev) * (1 - 1e-6))


# Sampler settings on top of the schedule. "trailing" spacing starts DDPM/DDIM at t = T - 1 (pure
# noise) at any step count, and DDIM's last step lands on alpha = 1, returning its clean estimate.
SAMPLERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddpm": (DDPMScheduler, dict(clip_sample=False, variance_type="fixed_small", timestep_spacing="trailing")),
    "ddim": (SafeDDIMScheduler, dict(clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")),
    "dpm-solver++": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2)),
    "unipc": (UniPCMultistepScheduler, dict(solver_order=2)),
}


def make_scheduler(name: str, **overrides) -> SchedulerMixin:
    """A fresh scheduler of kind `name` on the training schedule; `overrides` replace any setting."""
    try:
        scheduler_class, settings = SAMPLERS[name]
    except KeyError:
        raise UserError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}") from None
    return scheduler_class(**{**TRAINING_SCHEDULE, **settings, **overrides})


def training_schedule_of(scheduler: SchedulerMixin) -> dict:
    """The noise-schedule settings of a (saved) scheduler, to build any sampler on the same schedule."""
    keys = list(TRAINING_SCHEDULE) + ["trained_betas", "rescale_betas_zero_snr"]
    return {key: scheduler.config[key] for key in keys if scheduler.config.get(key) is not None}


def objective_of(scheduler: SchedulerMixin) -> str | None:
    """The name in `OBJECTIVES` of the schedule a (saved) scheduler was trained on, None if none matches."""
    schedule = training_schedule_of(scheduler)
    return next((name for name, settings in OBJECTIVES.items() if training_schedule_of(make_scheduler("ddpm", **settings)) == schedule), None)
