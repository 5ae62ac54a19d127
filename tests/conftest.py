"""Fixtures shared by the whole suite: real photos shipped inside scikit-image (nothing is downloaded)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arbiscale.models import ImplicitAutoencoder, LatentDenoiser
from arbiscale.pipelines import GenerationPipeline, UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling import make_scheduler

# The suite runs as `pytest -n 2` on 2 cores: more than one thread per worker oversubscribes the CPU and
# makes small convolutions over 10x slower.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # so the commands' `--threads auto` keeps it (cli.inference_options)

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.fixture(scope="session")
def real_photos() -> dict[str, np.ndarray]:
    """Full-size RGB photos (H, W, 3) uint8 by name: astronaut 512x512, coffee 400x600, chelsea 300x451, rocket 427x640."""
    from skimage import data

    return {name: getattr(data, name)() for name in PHOTO_NAMES}


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory, real_photos: dict[str, np.ndarray]) -> Path:
    """A folder of four 128x160 (H x W) real photo crops saved as PNG, one per photo (astronaut.png, ...)."""
    folder = tmp_path_factory.mktemp("photos")
    for name, photo in real_photos.items():
        top = (photo.shape[0] - 128) // 2
        left = (photo.shape[1] - 160) // 2
        Image.fromarray(photo[top : top + 128, left : left + 160]).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sr/` and `gen/` pipeline folders of the tiny preset with random weights (one shared autoencoder)."""
    root = tmp_path_factory.mktemp("tiny_models")
    preset = get_preset("tiny")
    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**preset.autoencoder)
    for task, pipeline_class in (("sr", UpscalePipeline), ("gen", GenerationPipeline)):
        denoiser = LatentDenoiser.from_preset(preset, task)
        denoiser.set_latent_scale(50.0)
        pipeline_class(autoencoder, denoiser, make_scheduler("ddpm")).save_pretrained(root / task)
    return root


SVGS = {
    "ring.png": '<circle cx="8" cy="8" r="5" fill="none" stroke="#d02020" stroke-width="2"/>',
    "face.png": '<circle cx="8" cy="8" r="7" fill="#f0c020"/><circle cx="5.5" cy="6" r="1.2" fill="#302010"/>'
    '<circle cx="10.5" cy="6" r="1.2" fill="#302010"/><rect x="5" y="10" width="6" height="1.2" fill="#302010"/>',
    "flag.png": '<rect x="2" y="3" width="12" height="4" fill="#2040c0"/><rect x="2" y="7" width="12" height="4" fill="#20a040"/><polygon points="2,3 8,7 2,11" fill="#ffffff"/>',
}


def render_set(root: Path, sides: tuple[int, ...]) -> Path:
    """Exact resvg renders of the SVGS at every side, as scripts/build_vector_set.py lays them out."""
    resvg_py = pytest.importorskip("resvg_py")
    for side in sides:
        (root / str(side)).mkdir(parents=True, exist_ok=True)
        for name, body in SVGS.items():
            svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">{body}</svg>'
            png = resvg_py.svg_to_bytes(svg_string=svg, width=side, height=side, background="#ffffff")
            Image.open(io.BytesIO(bytes(png))).convert("RGB").save(root / str(side) / name)
    return root


@pytest.fixture(scope="session")
def make_render_set():
    """`make_render_set(root, sides)`: a small vector set (three SVGs rendered exactly at every side), as
    scripts/build_vector_set.py lays one out; skips the test without resvg-py."""
    return render_set
