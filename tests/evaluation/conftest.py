import pytest
import torch
from PIL import Image

from arbiscale.models import ImplicitAutoencoder
from arbiscale.models.unet import LatentDenoiser
from arbiscale.pipelines import GenerationPipeline, UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling import make_scheduler


@pytest.fixture(scope="session")
def eval_photos(tmp_path_factory, real_photos):
    """Three real photo crops of 60x76 (H x W): sides that scale 3.5 does not divide."""
    folder = tmp_path_factory.mktemp("eval_photos")
    for name in ("astronaut", "coffee", "chelsea"):
        photo = real_photos[name]
        top, left = (photo.shape[0] - 60) // 2, (photo.shape[1] - 76) // 2
        Image.fromarray(photo[top : top + 60, left : left + 76]).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Randomly initialised tiny SR and generation pipelines saved as `--model` folders."""
    root = tmp_path_factory.mktemp("eval_models")
    preset = get_preset("tiny")
    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**preset.autoencoder)
    for task, pipeline_class in (("sr", UpscalePipeline), ("gen", GenerationPipeline)):
        denoiser = LatentDenoiser.from_preset(preset, task)
        denoiser.set_latent_scale(50.0)
        pipeline_class(autoencoder, denoiser, make_scheduler("ddpm")).save_pretrained(root / task)
    return root
