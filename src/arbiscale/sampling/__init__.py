"""Sampling: samplers by name, the reverse-diffusion loop, and the scale semantics of upsampling."""

from .denoiser import Denoiser, TileableDenoiser
from .sample import predict_clean_latent, sample_latents
from .schedulers import OBJECTIVES, SAMPLERS, TRAINING_SCHEDULE, make_scheduler, training_schedule_of
from .sizes import check_latent_size, check_output_size, output_size, working_latent_size

__all__ = [
    "Denoiser",
    "OBJECTIVES",
    "SAMPLERS",
    "TRAINING_SCHEDULE",
    "TileableDenoiser",
    "check_latent_size",
    "check_output_size",
    "make_scheduler",
    "output_size",
    "predict_clean_latent",
    "sample_latents",
    "training_schedule_of",
    "working_latent_size",
]
