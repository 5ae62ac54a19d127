"""What the samplers ask of a denoiser, as a protocol: any callable model with a device will do.

As k-diffusion's samplers take any model, `sample_latents` and the tiled denoiser take anything that maps
(noisy latent, timestep, condition or None) to the model's output: `models.unet.LatentDenoiser`, the
`TiledDenoiser` around it, or a baseline's network. So `sampling` needs nothing from `models`.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Denoiser(Protocol):
    """(noisy latent (B, C, h, w), timestep, condition or None) -> the model's output, on `device`."""

    @property
    def device(self) -> torch.device: ...

    def __call__(self, noisy_latent: torch.Tensor, timestep: torch.Tensor | int, condition: torch.Tensor | None = None) -> torch.Tensor: ...


class TileableDenoiser(Denoiser, Protocol):
    """A denoiser whose input sides must be multiples of `size_multiple` (its UNet's downsamplings)."""

    @property
    def size_multiple(self) -> int: ...
