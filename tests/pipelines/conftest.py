"""Tiny randomly initialised pipelines shared by the pipeline tests."""

import pytest
import torch

from arbiscale.models import ImplicitAutoencoder, LatentDenoiser
from arbiscale.pipelines import UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling import make_scheduler


def build_tiny_pipeline(pipeline_class, task):
    """Randomly initialised tiny components; the latent scale keeps sampled latents in a sane range."""
    torch.manual_seed(0)
    preset = get_preset("tiny")
    denoiser = LatentDenoiser.from_preset(preset, task)
    denoiser.set_latent_scale(50.0)
    pipe = pipeline_class(ImplicitAutoencoder(**preset.autoencoder), denoiser, make_scheduler("ddpm"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_pipeline():
    """The builder itself, for tests that need a fresh pipeline of either kind."""
    return build_tiny_pipeline


@pytest.fixture(scope="module")
def upscaler():
    return build_tiny_pipeline(UpscalePipeline, "sr")
