"""The latent denoiser: diffusers' UNet2DModel predicting the noise, for SR or for generation.

`LatentDenoiser` wraps the UNet so that what sampling needs besides the weights lives in its own
config.json and survives save_pretrained/from_pretrained:
- `task`: "sr" (the noisy latent is concatenated with the encoded low-resolution condition, so the
  UNet sees 2 x latent_channels) or "gen" (unconditional);
- `latent_scale`: 1 / std of the training latents (CompVis `scale_by_std`). The denoiser lives in
  the scaled space: feed it `autoencoder.encode(x) * latent_scale`, and decode `z / latent_scale`;
- `sample_size`: the training latent size, the default for generation;
- `residual` (SR only): the diffusion runs on the residual (z - condition) * `residual_scale`
  instead of on z itself. The condition already carries the low frequencies, so the sampler only
  has to add the detail the LR image lacks, and its colour cannot drift; `residual_scale` is
  1 / std of the training residuals, so the noise meets a unit-variance signal as it does for z.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DModel

from ..presets import Preset, get_preset

TASKS = ("sr", "gen")


class LatentDenoiser(ModelMixin, ConfigMixin):
    """eps_hat = UNet([z_t, condition], t): the UNet plus the task and latent scale it was trained with."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        task: str = "sr",
        latent_channels: int = 3,
        sample_size: tuple[int, int] = (32, 32),
        latent_scale: float = 1.0,
        unet_kwargs: dict | None = None,
        residual: bool = False,
        residual_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if residual and task != "sr":
            raise ValueError("only an SR denoiser can diffuse the residual over its condition")
        in_channels = 2 * latent_channels if task == "sr" else latent_channels
        self.unet = UNet2DModel(sample_size=tuple(sample_size), in_channels=in_channels, out_channels=latent_channels, **(unet_kwargs or {}))

    @classmethod
    def from_preset(cls, preset: str | Preset, task: str, residual: bool = False) -> "LatentDenoiser":
        """A freshly initialised denoiser sized by a preset, for its autoencoder's latent."""
        preset = get_preset(preset) if isinstance(preset, str) else preset
        latent_channels = preset.autoencoder.get("latent_channels", 3)
        return cls(task=task, latent_channels=latent_channels, sample_size=tuple(preset.latent_size), unet_kwargs=dict(preset.unet), residual=residual)

    @property
    def size_multiple(self) -> int:
        """Latent sides must be multiples of this: the UNet halves the resolution at every level but the last."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    def set_latent_scale(self, scale: float) -> None:
        """Record the measured latent scale in the config, so it is saved with the weights."""
        self.register_to_config(latent_scale=_positive_scale(scale, "latent"))

    def set_residual_scale(self, scale: float) -> None:
        """Record 1 / std of the training residuals (scaled latent minus scaled condition)."""
        self.register_to_config(residual_scale=_positive_scale(scale, "residual"))

    def diffusion_target(self, latent: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """What the diffusion runs on, from a scaled latent: the latent, or its scaled residual."""
        if not self.config.residual:
            return latent
        return (latent - condition) * self.config.residual_scale

    def latent_from(self, sample: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """The scaled latent a clean diffusion sample stands for (inverse of `diffusion_target`)."""
        if not self.config.residual:
            return sample
        return condition + sample / self.config.residual_scale

    def forward(self, noisy_latent: torch.Tensor, timestep: torch.Tensor | int, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise (B, z, h, w); `condition` is the scaled LR latent for SR and None for generation."""
        if (condition is not None) != (self.config.task == "sr"):
            need = "an encoded low-resolution condition" if self.config.task == "sr" else "no condition"
            raise ValueError(f"a {self.config.task!r} denoiser takes {need}")
        if condition is not None:
            noisy_latent = torch.cat([noisy_latent, condition.to(noisy_latent.dtype)], dim=1)
        return self.unet(noisy_latent, timestep).sample


def _positive_scale(scale: float, what: str) -> float:
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"{what} scale must be a positive finite number, got {scale}")
    return float(scale)


def measure_latent_scale(latents: torch.Tensor | Iterable[torch.Tensor]) -> float:
    """1 / std of the latents (all elements), from one tensor or an iterable of batches.

    Accumulates in float64 so many batches can be measured without holding them all.
    """
    batches = [latents] if isinstance(latents, torch.Tensor) else latents
    count, total, total_sq = 0, 0.0, 0.0
    for batch in batches:
        values = batch.detach().double()
        count += values.numel()
        total += values.sum().item()
        total_sq += values.square().sum().item()
    if count < 2:
        raise ValueError("need at least two latent values to measure their standard deviation")
    variance = (total_sq - total * total / count) / (count - 1)
    if not math.isfinite(variance) or variance <= 0:
        raise ValueError(f"latents have no spread (variance {variance}): cannot scale them to unit std")
    return 1.0 / math.sqrt(variance)
