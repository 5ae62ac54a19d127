"""Upsampling to any scale or size: `UpscalePipeline(images, scale=3.7)`.

Scale semantics (implemented in `arbiscale.sampling.sizes`):
1. Output size: an (h, w) input at scale s becomes exactly (round(h * s), round(w * s)); an explicit
   `size=(H, W)` is honoured exactly, even with another aspect ratio (the image is stretched).
2. Working size: the UNet samples a latent of about (H / f, W / f) (f: the autoencoder's factor),
   each side rounded to the UNet's size multiple m. When the longer side would pass
   `max_latent_side` (default: 8 x the training latent side), both shrink by the same factor.
   `latent_size=(h, w)` overrides this, e.g. to run the paper's fixed latent size at every scale.
3. Condition: the LR image is resized (antialiased bicubic) to the working image size
   (latent size x f), encoded by the frozen encoder, scaled by the denoiser's `latent_scale` and
   concatenated with the noisy latent at every step.
4. Rendering: the sampled latent is decoded once, directly at (H, W), in chunks of query points.
   The decoder covers the same [-1, 1] square whatever the latent's size, so the output is exact
   and keeps the requested aspect ratio; past the cap, a larger scale only costs decoder time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.utils import BaseOutput
from PIL import Image

from ..data.images import image_to_tensor, resize
from ..errors import UserError
from ..sampling.sample import Generator, sample_latents
from ..sampling.sizes import check_latent_size, output_size, working_latent_size
from .base import LatentImplicitPipeline

# The default cap on the sampled latent's longer side, in multiples of the training latent side:
# the UNet is convolutional and runs beyond its training size, but its cost grows with the area.
MAX_LATENT_FACTOR = 8


@dataclass
class UpscaleOutput(BaseOutput):
    """`images` (B * num_samples, 3, H, W) in [-1, 1], image-major; `latents` are the raw (unscaled)
    sampled latents, so `autoencoder.decode(latents, size)` renders them at any other size."""

    images: torch.Tensor
    latents: torch.Tensor


class UpscalePipeline(LatentImplicitPipeline):
    """Diffusion upsampling conditioned on the encoded low-resolution image (see the module docstring)."""

    task = "sr"
    command = "upscale"

    def default_max_latent_side(self) -> int:
        """The cap on the sampled latent's longer side when the caller gives none."""
        return MAX_LATENT_FACTOR * max(self.denoiser.config.sample_size)

    def working_size(
        self,
        input_size: tuple[int, int],
        scale: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        latent_size: tuple[int, int] | None = None,
        max_latent_side: int | None = None,
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """(output (H, W), latent (h, w)) for an input size and a scale or size."""
        out_size = output_size(input_size, scale, size)
        multiple = self.denoiser.size_multiple
        if latent_size is not None:
            return out_size, check_latent_size(latent_size, multiple)
        cap = self.default_max_latent_side() if max_latent_side is None else max_latent_side
        return out_size, working_latent_size(out_size, self.autoencoder.downsample_factor, multiple, cap)

    def as_batch(self, images: torch.Tensor | Image.Image | list[Image.Image]) -> torch.Tensor:
        """(B, 3, h, w) float32 on the pipeline's device, from a tensor or PIL image(s) of one size."""
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, list):
            if len({image.size for image in images}) > 1:
                raise UserError("images of different sizes cannot share one call: upscale them one at a time")
            images = torch.stack([image_to_tensor(image) for image in images])
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3:
            raise UserError(f"expected RGB images (B, 3, h, w) in [-1, 1], got shape {tuple(images.shape)}")
        return images.to(self.device, torch.float32)

    @torch.no_grad()
    def __call__(
        self,
        images: torch.Tensor | Image.Image | list[Image.Image],
        scale: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        num_inference_steps: int = 50,
        sampler: str = "ddim",
        eta: float | None = None,
        generator: Generator = None,
        num_samples: int = 1,
        latent_size: tuple[int, int] | None = None,
        max_latent_side: int | None = None,
        decode_chunk: int = 65536,
        autocast_dtype: torch.dtype | None = None,
    ) -> UpscaleOutput:
        """Upsample each image `num_samples` times; a list of generators gives one seed per output image."""
        if num_samples < 1:
            raise UserError(f"the number of samples must be at least 1, got {num_samples}")
        low_res = self.as_batch(images)
        out_size, latent_hw = self.working_size(tuple(low_res.shape[-2:]), scale, size, latent_size, max_latent_side)
        factor = self.autoencoder.downsample_factor
        conditioning_image = resize(low_res, (latent_hw[0] * factor, latent_hw[1] * factor))
        latent_scale = self.denoiser.config.latent_scale
        scheduler = self.make_sampler(sampler)
        with self.precision(autocast_dtype):
            condition = self.autoencoder.encode(conditioning_image).float() * latent_scale
            condition = condition.repeat_interleave(num_samples, dim=0)
            latents = sample_latents(
                self.denoiser, scheduler, tuple(condition.shape), condition, num_inference_steps,
                self.resolve_eta(sampler, eta), generator, self.progress_bar,
            ) / latent_scale
            upscaled = self.render(latents, out_size, decode_chunk)
        return UpscaleOutput(images=upscaled, latents=latents)
