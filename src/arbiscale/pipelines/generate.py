"""Generation at any resolution: one latent sampled, rendered at every requested size.

The UNet samples at a fixed latent size (by default the training latent size); the implicit
decoder renders that same latent at each (H, W), so the renders are one picture at several sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.utils import BaseOutput
from PIL import Image

from ..choices import BUNDLED_GENERATORS, GENERATION_DDIM_ETA, GENERATION_SAMPLING
from ..errors import UserError
from ..geometry import format_size
from ..sampling.sample import Generator, sample_latents
from ..sampling.sizes import check_latent_size, check_output_size
from .base import LatentImplicitPipeline, images_to_pil
from .memory import FLOAT, check_free, unet_bytes


@dataclass
class GenerationOutput(BaseOutput):
    """`images[i]` (num_images, 3, H_i, W_i) in [-1, 1] for `sizes[i]`; `latents` the raw sampled latents."""

    images: list[torch.Tensor]
    latents: torch.Tensor

    def to_pil(self) -> list[list[Image.Image]]:
        """`to_pil()[i][k]`: image k at `sizes[i]` as an 8-bit RGB PIL image."""
        return [images_to_pil(batch) for batch in self.images]


class GenerationPipeline(LatentImplicitPipeline):
    """Unconditional latent diffusion, decoded by the implicit decoder at every requested size."""

    task = "gen"
    command = "generate"
    bundled_models = BUNDLED_GENERATORS
    default_ddim_eta = GENERATION_DDIM_ETA

    @torch.no_grad()
    def __call__(
        self,
        sizes: list[tuple[int, int]] | tuple[int, int],
        num_images: int = 1,
        latent_size: tuple[int, int] | None = None,
        num_inference_steps: int = GENERATION_SAMPLING["num_inference_steps"],
        sampler: str = GENERATION_SAMPLING["sampler"],
        eta: float | None = None,
        generator: Generator = None,
        decode_chunk: int = 65536,
        autocast_dtype: torch.dtype | None = None,
    ) -> GenerationOutput:
        """Sample `num_images` latents and render each at every (H, W) in `sizes` (or at one (H, W));
        a list of generators, one per image, fixes each image whatever the batch."""
        if num_images < 1:
            raise UserError(f"the number of images must be at least 1, got {num_images}")
        if len(sizes) == 2 and all(isinstance(side, int) for side in sizes):
            sizes = [sizes]
        if not sizes:
            raise UserError("give at least one output size (H, W)")
        sizes = [check_output_size(tuple(size)) for size in sizes]
        latent_hw = check_latent_size(tuple(self.denoiser.config.sample_size) if latent_size is None else tuple(latent_size), self.denoiser.size_multiple)
        shape = (num_images, self.denoiser.config.latent_channels, *latent_hw)
        rendered = max(FLOAT * 3 * num_images * height * width for height, width in sizes)
        check_free(
            unet_bytes(self.denoiser, latent_hw[0] * latent_hw[1], num_images) + rendered,
            self.device,
            f"sampling {num_images} latent(s) of {format_size(latent_hw)}",
            "lower the latent size or the number of images sampled together",
        )
        latent_scale = self.denoiser.config.latent_scale
        scheduler = self.make_sampler(sampler)
        with self.precision(autocast_dtype):
            latents = sample_latents(self.denoiser, scheduler, shape, None, num_inference_steps, self.resolve_eta(sampler, eta), generator, self.progress_bar) / latent_scale
            images = [self.render(latents, size, decode_chunk) for size in sizes]
        return GenerationOutput(images=images, latents=latents)
