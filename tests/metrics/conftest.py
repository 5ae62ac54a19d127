import numpy as np
import pytest
import torch
from skimage import data


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photo, (512, 512, 3) uint8, shipped inside scikit-image."""
    return data.astronaut()


@pytest.fixture(scope="session")
def to_model_range():
    """Converter (H,W,3) 8-bit-scale array -> (1,3,H,W) float64 in [-1, 1]."""

    def convert(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(array)).permute(2, 0, 1).unsqueeze(0).double() / 127.5 - 1

    return convert


@pytest.fixture(scope="session")
def photo_pair(astronaut) -> tuple[np.ndarray, np.ndarray]:
    """A 96x120 crop and a degraded copy (noise + blur-like shift), both uint8."""
    clean = astronaut[40:232:2, 100:340:2]
    rng = np.random.default_rng(0)
    noisy = np.clip(clean.astype(np.float64) + rng.normal(0, 12, clean.shape) + 5, 0, 255).round().astype(np.uint8)
    return clean, noisy
