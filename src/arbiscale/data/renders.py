"""Training items from exact renders: vector art drawn at several sides, each side ground truth.

A photo set has one resolution, so stage 1 learns every scale from resized crops of it. A vector set
(built by `scripts/build_vector_set.py`: `ROOT/<side>/<name>.png`) has the true picture at every side,
so the decoder can learn what a 512-pixel render of a 64-pixel input really looks like, beyond the
input's own resolution, which no resized crop shows.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .crops import item_generator, load_uint8, random_symmetry, sample_queries, uint8_to_float


def render_sides(root: Path, input_side: int, max_side: int | None = None) -> list[int]:
    """The sides from `input_side` to `max_side` (None: no bound) that `root` has a `<side>/` folder for, ascending."""
    sides = sorted(int(entry.name) for entry in root.iterdir() if entry.is_dir() and entry.name.isdigit())
    return [side for side in sides if input_side <= side and (max_side is None or side <= max_side)]


class TrueRenders(Dataset):
    """Stage-1 items {"image", "coord", "cell", "target"}: the render at the input side (latent size x f)
    and random pixels of the same picture's exact render at a random side up to `max_scale` x the input.

    Sides are drawn uniformly from those on disk (every image must have the same ones); the input and its
    target share one symmetry. Items are pure functions of (seed, epoch, index), as in `ArbitraryScaleCrops`.
    """

    def __init__(
        self,
        paths: list[Path],
        root: Path,
        latent_size: tuple[int, int],
        downsample_factor: int,
        num_queries: int | None = None,
        max_scale: float = 8.0,
        length: int = 1000,
        seed: int = 0,
        augment: str = "flip",
    ) -> None:
        if not paths:
            raise ValueError("TrueRenders needs at least one image path")
        if latent_size[0] != latent_size[1]:
            raise ValueError(f"renders are square, so the latent must be too, got {latent_size}")
        self.latent_size = tuple(latent_size)
        input_side = latent_size[0] * downsample_factor
        self.sides = render_sides(root, input_side, int(input_side * max_scale))
        if input_side not in self.sides or len(self.sides) < 2:
            raise ValueError(
                f"{root} needs a {input_side}/ folder (the input side) and at least one larger side up to {int(input_side * max_scale)} px, found {self.sides or 'none'}"
            )
        self.num_queries = num_queries or latent_size[0] * latent_size[1]
        self.length, self.seed, self.augment, self.epoch = length, seed, augment, 0
        self.renders: list[dict[int, torch.Tensor]] = []
        for path in tqdm(paths, desc="decoding renders", disable=None):
            missing = [side for side in self.sides if not (root / str(side) / path.name).is_file()]
            if missing:
                raise ValueError(f"{root} has no render of {path.name} at {', '.join(map(str, missing))} px: every image needs every side")
            renders = {side: load_uint8(root / str(side) / path.name) for side in self.sides}
            for side, image in renders.items():
                if tuple(image.shape[-2:]) != (side, side):
                    raise ValueError(f"{root / str(side) / path.name} is {image.shape[-1]}x{image.shape[-2]}, not {side}x{side}")
            self.renders.append(renders)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = item_generator(self.seed, self.epoch, index)
        renders = self.renders[index % len(self.renders)]
        side = self.sides[int(torch.randint(len(self.sides), (1,), generator=generator))]
        symmetry_seed = int(torch.randint(2**62, (1,), generator=generator))
        image, target = (uint8_to_float(random_symmetry(renders[s], torch.Generator().manual_seed(symmetry_seed), self.augment)) for s in (self.sides[0], side))
        coord, cell, values = sample_queries(target, self.num_queries, generator)
        return {"image": image, "coord": coord, "cell": cell, "target": values}
