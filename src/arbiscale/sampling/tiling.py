"""Tiled latent sampling in the manner of MultiDiffusion (Bar-Tal et al. 2023).

At every step the denoiser runs on overlapping tiles of the working latent (with the matching tiles
of the condition); the noise predictions are blended with smooth weights that sum to one at every
cell, and the sampler then takes one step on the whole latent. Memory is bounded by the tile size,
not by the latent size, and the blending keeps neighbouring tiles from drifting apart.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from .denoiser import Denoiser, TileableDenoiser

Tile = tuple[slice, slice]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the fewest tiles of size `tile` that cover [0, length) with `overlap` shared
    cells (at least, up to rounding) between neighbours, spread evenly so every tile has one size."""
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise UserError(f"tile overlap must be at least 0 and smaller than the tile ({tile}), got {overlap}")
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


def tile_layout(size: tuple[int, int], tile: int, overlap: int) -> list[Tile]:
    """Row-major (rows, cols) slices of equal-sized overlapping tiles covering an (h, w) grid."""
    spans = [[slice(start, start + min(tile, length)) for start in tile_starts(length, tile, overlap)] for length in size]
    return [(rows, cols) for rows in spans[0] for cols in spans[1]]


def ramp(length: int, before: int, after: int) -> torch.Tensor:
    """1-D weights of a tile: a cos^2 fade over the cells shared with the previous and next tile.

    Where two tiles share n cells their fades are sin^2 and cos^2 of the same angles, so they sum to
    one; all weights stay positive, so normalising by the sum is always defined.
    """
    weights = torch.ones(length, dtype=torch.float64)
    if before:
        weights[:before] = torch.sin(math.pi / 2 * (torch.arange(before, dtype=torch.float64) + 0.5) / before) ** 2
    if after:
        weights[length - after :] *= torch.cos(math.pi / 2 * (torch.arange(after, dtype=torch.float64) + 0.5) / after) ** 2
    return weights


def blend_weights(size: tuple[int, int], tiles: list[Tile]) -> list[torch.Tensor]:
    """(th, tw) float32 weight of each tile of `tile_layout`, normalised to sum to one at every cell."""
    axis_spans = [sorted({(rows.start, rows.stop) for rows, _ in tiles}), sorted({(cols.start, cols.stop) for _, cols in tiles})]
    axis_ramps = []
    for spans in axis_spans:
        ramps = {}
        for index, (start, stop) in enumerate(spans):
            before = spans[index - 1][1] - start if index > 0 else 0
            after = stop - spans[index + 1][0] if index + 1 < len(spans) else 0
            ramps[start] = ramp(stop - start, before, after)
        axis_ramps.append(ramps)
    raw = [axis_ramps[0][rows.start][:, None] * axis_ramps[1][cols.start][None, :] for rows, cols in tiles]
    total = torch.zeros(size, dtype=torch.float64)
    for (rows, cols), weight in zip(tiles, raw):
        total[rows, cols] += weight
    return [(weight / total[rows, cols]).float() for (rows, cols), weight in zip(tiles, raw)]


def blended_noise(
    denoiser: Denoiser, latents: torch.Tensor, timestep: torch.Tensor | int, condition: torch.Tensor | None, tiles: list[Tile], weights: list[torch.Tensor], tile_batch: int = 1
) -> torch.Tensor:
    """The denoiser's noise prediction for the whole latent, from its tiles blended by `weights`.

    Tiles (all of one size) run `tile_batch` at a time through the denoiser as one batch.
    """
    blended = torch.zeros(latents.shape, device=latents.device, dtype=torch.float32)
    for first in range(0, len(tiles), tile_batch):
        group = tiles[first : first + tile_batch]
        inputs = torch.cat([latents[..., rows, cols] for rows, cols in group])
        conditions = None if condition is None else torch.cat([condition[..., rows, cols] for rows, cols in group])
        predictions = denoiser(inputs, timestep, conditions).float().chunk(len(group))
        for (rows, cols), weight, prediction in zip(group, weights[first : first + tile_batch], predictions):
            blended[..., rows, cols] += prediction * weight.to(latents.device)
    return blended


class TiledDenoiser(nn.Module):
    """A denoiser that runs on overlapping tiles and blends them: a drop-in for `sample_latents`."""

    def __init__(self, denoiser: TileableDenoiser, tile: int, overlap: int, tile_batch: int = 1) -> None:
        super().__init__()
        if tile % denoiser.size_multiple:
            raise UserError(f"the tile size must be a multiple of {denoiser.size_multiple} latent cells, got {tile}")
        if tile_batch < 1:
            raise UserError(f"the tile batch must be at least 1, got {tile_batch}")
        self.denoiser = denoiser
        self.tile, self.overlap, self.tile_batch = tile, overlap, tile_batch
        self._layout: tuple[tuple[int, int], list[Tile], list[torch.Tensor]] | None = None

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    def layout(self, size: tuple[int, int]) -> tuple[list[Tile], list[torch.Tensor]]:
        """The tiles and blend weights for an (h, w) latent, computed once per size."""
        if self._layout is None or self._layout[0] != size:
            tiles = tile_layout(size, self.tile, self.overlap)
            self._layout = (size, tiles, blend_weights(size, tiles))
        return self._layout[1], self._layout[2]

    def forward(self, noisy_latent: torch.Tensor, timestep: torch.Tensor | int, condition: torch.Tensor | None = None) -> torch.Tensor:
        tiles, weights = self.layout(tuple(noisy_latent.shape[-2:]))
        return blended_noise(self.denoiser, noisy_latent, timestep, condition, tiles, weights, self.tile_batch)
