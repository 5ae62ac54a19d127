"""The LIIF baseline's training (Chen et al. 2021), on the same photo crops as stage 1.

LIIF's protocol: a fixed-size LR input is an HR window of s x that size shrunk (antialiased bicubic),
s ~ U[1, 4], and the targets are the window's own pixels at random query points (L1 loss). LIIF uses
48 x 48 inputs; here the input has the preset's latent size (16 x 16 for `small`, 48 x 48 for
`paper-div2k-sr`), so the crops are 4 x that, the window of the largest scale: for `small` that is
its 64 x 64 training crop (latent 16 x f 4). Validation: RGB PSNR of whole 4x renders of fixed crops.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data.crops import ArbitraryScaleCrops, random_crop, sample_queries
from ..data.images import resize
from ..geometry import scaled_size
from ..metrics.psnr_ssim import psnr
from ..models.liif import LIIF
from .autoencoder import validation_crops
from .loop import TrainingTask

# LIIF's largest training scale; the crops are this many times the input size.
MAX_SCALE = 4


class DownscaledWindows(ArbitraryScaleCrops):
    """Items {"lr", "coord", "cell", "target"}: an HR window of s x the input size from a crop of
    MAX_SCALE x it, shrunk to the input size, and `num_queries` of the window's own pixels.

    The crop, its augmentation and s are drawn as stage 1 draws them (`crop_and_scale`), so a resumed
    run replays its batches; the input size is fixed, so items of different scales stack.
    """

    def __init__(
        self,
        paths: list[Path],
        input_size: tuple[int, int],
        num_queries: int | None = None,
        length: int = 1000,
        seed: int = 0,
        deterministic: bool = False,
        augment: str = "dihedral",
    ) -> None:
        super().__init__(paths, input_size, MAX_SCALE, num_queries=num_queries, length=length, seed=seed, deterministic=deterministic, augment=augment)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, scale, generator = self.crop_and_scale(index)
        window = random_crop(image, scaled_size(self.latent_size, scale), generator)
        coord, cell, values = sample_queries(window, self.num_queries, generator)
        return {"lr": resize(window, self.latent_size), "coord": coord, "cell": cell, "target": values}


def validation_references(paths: list[Path], input_size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(4, 3, 4h, 4w) fixed crops of a few photos: the HR references of the 4x validation."""
    return validation_crops(paths, input_size, MAX_SCALE, seed=seed)


class LIIFTask(TrainingTask):
    """LIIF as a `TrainingTask`: its forward is the whole training computation, so it is the model."""

    def __init__(self, liif: LIIF, dataset: DownscaledWindows, validation_images: torch.Tensor) -> None:
        self.model = liif
        self.dataset = dataset
        self.validation_images = validation_images

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        predicted = model(batch["lr"], batch["coord"], batch["cell"])
        return (predicted.float() - batch["target"].float()).abs().mean(), {}

    def validate(self, model: nn.Module) -> dict[str, float]:
        images = self.validation_images.to(model.device)
        size = tuple(images.shape[-2:])
        low = resize(images, (size[0] // MAX_SCALE, size[1] // MAX_SCALE))
        return {f"val_psnr_{MAX_SCALE}x": psnr(model.upscale(low, size), images).mean().item()}
