"""Noise schedules and samplers by name, all on the one training schedule the denoiser learned.

The paper's training schedule is CompVis LDM's: T = 1000, "linear" betas from 0.0015 to 0.0195 in
sqrt-space (diffusers `scaled_linear`), epsilon prediction. Its last step keeps a little signal
(SNR 0.005 at t = T), so a model trained on it never sees pure noise while sampling starts there:
the low frequencies (mean colour) it assumes at t = T are wrong (Lin et al. 2024). `OBJECTIVES`
adds the fix: v-prediction on the same betas rescaled to zero terminal SNR. Samplers never clip the
predicted clean sample: latents are not bounded to [-1, 1].
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..errors import UserError

TRAINING_SCHEDULE = dict(
    num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, prediction_type="epsilon"
)

# Named training objectives: the schedule settings that differ from TRAINING_SCHEDULE.
OBJECTIVES: dict[str, dict] = {
    "epsilon": {},
    "v-zero-snr": dict(prediction_type="v_prediction", rescale_betas_zero_snr=True),
}

# Sampler settings on top of the schedule. "trailing" spacing starts DDPM/DDIM at t = T - 1 (pure
# noise) at any step count, and DDIM's last step lands on alpha = 1, returning its clean estimate.
SAMPLERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddpm": (DDPMScheduler, dict(clip_sample=False, variance_type="fixed_small", timestep_spacing="trailing")),
    "ddim": (DDIMScheduler, dict(clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")),
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
