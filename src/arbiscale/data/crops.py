"""Training crops: random HR crops, dihedral augmentation, and LIIF-style queries at a random scale.

Every random choice of an item comes from a generator seeded by (seed, epoch, index), so an item is
a pure function of its position in the run: a resumed run sees exactly the batches it would have seen,
and processes under DDP, which read different indices, see different crops.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..choices import AUGMENTATIONS
from ..geometry import cell_size, coord_grid, scaled_size
from .images import load_image, resize


def item_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer keys (e.g. seed, epoch, index), well mixed by SeedSequence."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def load_uint8(path: str | Path) -> torch.Tensor:
    """(3, H, W) uint8 tensor of an image file: a quarter of the memory of float, for in-memory caches."""
    array = np.asarray(load_image(path), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def uint8_to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return image.float().div(127.5).sub(1.0)


def float_to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded (the inverse of `uint8_to_float` on its values)."""
    return image.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def fit_to_size(image: torch.Tensor, min_size: tuple[int, int]) -> torch.Tensor:
    """Upscale a (3, H, W) uint8 image, keeping its aspect ratio, until it covers `min_size`; larger ones pass."""
    height, width = image.shape[-2:]
    factor = max(min_size[0] / height, min_size[1] / width)
    if factor <= 1:
        return image
    size = (max(min_size[0], math.ceil(height * factor)), max(min_size[1], math.ceil(width * factor)))
    return float_to_uint8(resize(uint8_to_float(image), size))


def random_crop(image: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A (.., h, w) window at a uniformly random position of a (.., H, W) tensor with H >= h, W >= w."""
    height, width = image.shape[-2:]
    crop_h, crop_w = size
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {crop_h}x{crop_w} does not fit in an image of {height}x{width}")
    top = int(torch.randint(height - crop_h + 1, (1,), generator=generator))
    left = int(torch.randint(width - crop_w + 1, (1,), generator=generator))
    return image[..., top : top + crop_h, left : left + crop_w]


def random_symmetry(image: torch.Tensor, generator: torch.Generator, augment: str = "dihedral") -> torch.Tensor:
    """A random symmetry of (.., H, W), shape kept. dihedral: all 8 of a square (the 4 flips otherwise);
    flip: left-right mirror or not; none: the image itself."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    if augment == "none":
        return image
    height, width = image.shape[-2:]
    choice = int(torch.randint(2 if augment == "flip" else 8 if height == width else 4, (1,), generator=generator))
    return symmetry(image, choice).contiguous()


def symmetry(image: torch.Tensor, choice: int) -> torch.Tensor:
    """Symmetry `choice` (0-7) of (.., H, W): bit 1 mirrors left-right, bit 2 up-down, then bit 4 transposes."""
    if choice & 1:
        image = image.flip(-1)
    if choice & 2:
        image = image.flip(-2)
    if choice & 4:
        image = image.transpose(-2, -1)
    return image


def sample_queries(target: torch.Tensor, num_queries: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`num_queries` random pixels of a (3, H, W) target: coord (Q, 2), cell (2,), values (Q, 3).

    Pixels are drawn without replacement when the target has enough of them, so a batch of items with
    different target sizes still stacks into fixed-size tensors.
    """
    size = tuple(target.shape[-2:])
    count = size[0] * size[1]
    if num_queries <= count:
        index = torch.randperm(count, generator=generator)[:num_queries]
    else:
        index = torch.randint(count, (num_queries,), generator=generator)
    coord = coord_grid(size, dtype=target.dtype)[index]
    values = target.reshape(target.shape[0], -1)[:, index].t()
    return coord, cell_size(size, dtype=target.dtype), values


class ArbitraryScaleCrops(Dataset):
    """Stage-1 items: an HR crop of latent_size * f and random pixels of it resized to s x latent_size.

    s ~ U[1, max_scale] (max_scale <= f, so targets are never upsampled copies of the crop). Photos are
    decoded once and kept as uint8; ones smaller than the crop are upscaled to cover it. `length` is the
    number of items per epoch, independent of the number of photos (item i uses photo i mod N).
    `augment` names the symmetries crops are drawn under (`random_symmetry`); `deterministic=True` fixes
    each index's crop, scale and queries and turns augmentation off (validation).
    """

    def __init__(
        self,
        paths: list[Path],
        latent_size: tuple[int, int],
        downsample_factor: int,
        num_queries: int | None = None,
        max_scale: float | None = None,
        length: int = 1000,
        seed: int = 0,
        deterministic: bool = False,
        augment: str = "dihedral",
    ) -> None:
        if not paths:
            raise ValueError("ArbitraryScaleCrops needs at least one image path")
        self.latent_size = tuple(latent_size)
        self.crop_size = (latent_size[0] * downsample_factor, latent_size[1] * downsample_factor)
        self.max_scale = float(downsample_factor if max_scale is None else max_scale)
        if not 1 <= self.max_scale <= downsample_factor:
            raise ValueError(f"max_scale must lie in [1, {downsample_factor}] (the downsample factor), got {self.max_scale}")
        self.num_queries = num_queries or latent_size[0] * latent_size[1]
        if length <= 0 or self.num_queries <= 0:
            raise ValueError(f"length and num_queries must be positive, got {length} and {self.num_queries}")
        self.length = length
        self.seed = seed
        self.deterministic = deterministic
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
        self.augment = "none" if deterministic else augment
        self.epoch = 0
        self.images = [fit_to_size(load_uint8(p), self.crop_size) for p in tqdm(paths, desc="decoding images", disable=None)]

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before each pass, so epochs draw different crops."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def crop_and_scale(self, index: int) -> tuple[torch.Tensor, float, torch.Generator]:
        """Item `index`'s float HR crop (augmented), its scale s, and its generator for any further draws.

        Shared with datasets that build other items from the same crops (the LIIF baseline's), so they
        draw crops exactly as this one does.
        """
        generator = item_generator(self.seed, 0 if self.deterministic else self.epoch, index)
        crop = random_crop(self.images[index % len(self.images)], self.crop_size, generator)
        crop = random_symmetry(crop, generator, self.augment)
        scale = 1 + (self.max_scale - 1) * float(torch.rand((), generator=generator))
        return uint8_to_float(crop), scale, generator

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, scale, generator = self.crop_and_scale(index)
        target = resize(image, scaled_size(self.latent_size, scale))
        coord, cell, values = sample_queries(target, self.num_queries, generator)
        return {"image": image, "coord": coord, "cell": cell, "target": values}
