"""Upsampling to any scale or size: `UpscalePipeline(images, scale=3.7)`.

Scale semantics (implemented in `arbiscale.sampling.sizes`):
1. Output size: an (h, w) input at scale s becomes exactly (round(h * s), round(w * s)); an explicit
   `size=(H, W)` is honoured exactly, even with another aspect ratio (the image is stretched).
2. Working size: the UNet samples a latent of about (H / f, W / f) (f: the autoencoder's factor),
   each side rounded to the UNet's size multiple m. When the longer side would pass
   `max_latent_side` (default: 8 x the training latent side), both shrink by the same factor, but
   by default never below the input's own resolution (latent x f >= input on each side), so no
   detail of the input is thrown away before sampling. It depends on the input, the scale and the
   model alone, never on memory options. `latent_size=(h, w)` overrides this, e.g. to run the
   paper's fixed latent size at every scale; an explicit `max_latent_side` caps it without the floor.
3. Condition: the LR image is resized (antialiased bicubic) to the working image size
   (latent size x f), encoded by the frozen encoder, scaled by the denoiser's `latent_scale` and
   concatenated with the noisy latent at every step.
4. Rendering: the sampled latent is decoded once, directly at (H, W), in chunks of query points.
   The decoder covers the same [-1, 1] square whatever the latent's size, so the output is exact
   and keeps the requested aspect ratio; past the cap, a larger scale only costs decoder time.
5. Large images: each stage (encoding, sampling, decoding) runs whole when it fits in the free
   memory, else in tiles (`pipelines.memory`): encoding and decoding in seamless tiles
   (`pipelines.tiled_decode`), sampling in overlapping tiles blended at every step
   (`sampling.tiling`). `enable_tiling(tile_size, tile_overlap, max_memory)` asks for tiles or a
   budget; either way the working size of point 2 stays what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.utils import BaseOutput
from PIL import Image

from ..choices import BUNDLED_UPSCALERS, DEFAULT_DDIM_ETA, DEFAULT_SAMPLING, PAPER_SAMPLING  # noqa: F401  (re-exported: the pipeline's defaults)
from ..data.images import image_to_tensor, resize
from ..errors import UserError
from ..sampling.denoiser import Denoiser
from ..sampling.sample import Generator, sample_latents
from ..sampling.sizes import check_latent_size, output_size, working_latent_size
from ..sampling.tiling import TiledDenoiser
from .base import LatentImplicitPipeline, images_to_pil
from .consistency import enforce_low_res_consistency
from .memory import TilePlan, TilingOptions, available_memory, parse_memory, plan_tiles, readable
from .tiled_decode import tiled_decode, tiled_encode

# The default cap on the sampled latent's longer side, in multiples of the training latent side:
# the UNet is convolutional and runs beyond its training size, but its cost grows with the area.
MAX_LATENT_FACTOR = 8


@dataclass
class UpscaleOutput(BaseOutput):
    """`images` (B * num_samples, 3, H, W) in [-1, 1], image-major; `latents` are the raw (unscaled)
    sampled latents, so `autoencoder.decode(latents, size)` renders them at any other size; `tiling`
    says which stages ran in tiles, and at what sizes."""

    images: torch.Tensor
    latents: torch.Tensor
    tiling: TilePlan | None = None

    def to_pil(self) -> list[Image.Image]:
        """The images as 8-bit RGB PIL images, image-major like `images`."""
        return images_to_pil(self.images)


class UpscalePipeline(LatentImplicitPipeline):
    """Diffusion upsampling conditioned on the encoded low-resolution image (see the module docstring)."""

    task = "sr"
    command = "upscale"
    bundled_models = BUNDLED_UPSCALERS
    default_ddim_eta = DEFAULT_DDIM_ETA
    tiling = TilingOptions()  # `enable_tiling`: none asked; stages tile only where the whole image does not fit

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
        """(output (H, W), latent (h, w)) for an input size and a scale or size (points 1-2 of the module
        docstring): a function of the input, the scale and the model alone, never of the memory."""
        out_size = output_size(input_size, scale, size)
        multiple = self.denoiser.size_multiple
        if latent_size is not None:
            return out_size, check_latent_size(latent_size, multiple)
        factor = self.autoencoder.downsample_factor
        if max_latent_side is not None:
            return out_size, working_latent_size(out_size, factor, multiple, max_latent_side)
        return out_size, working_latent_size(out_size, factor, multiple, self.default_max_latent_side(), input_size)

    def enable_tiling(self, tile_size: int | None = None, tile_overlap: int | None = None, max_memory: int | str | None = None) -> None:
        """Compute later calls in tiles: `tile_size` latent cells a side (sampling, encoding and decoding),
        `tile_overlap` cells shared by neighbouring sampling tiles (default a quarter tile), and/or within a
        `max_memory` budget (bytes, or e.g. "4GB"; default the free memory), from which the tile and query
        chunk sizes are chosen. Without it a stage runs in tiles only when the whole image would not fit.
        Tiling changes how the picture is computed (seamlessly, `pipelines.tiled_decode`), not its size."""
        self.tiling = TilingOptions(tile_size, tile_overlap, parse_memory(max_memory) if max_memory is not None else None)

    def disable_tiling(self) -> None:
        """Back to the default: tiles only where the whole image does not fit in the free memory."""
        self.tiling = TilingOptions()

    def plan_memory(self, batch: int, latent_hw: tuple[int, int], out_size: tuple[int, int], decode_chunk: int) -> TilePlan:
        """Which stages run whole and which in tiles, for `batch` outputs within the tiling budget."""
        free = available_memory(self.device)
        budget = self.tiling.max_memory if self.tiling.max_memory is not None else free
        if budget > free:
            raise UserError(f"the memory budget {readable(budget)} is more than the {readable(free)} free here: give at most that, or no budget (the free memory is the default)")
        return plan_tiles(
            self.autoencoder, self.denoiser, batch, latent_hw, out_size, budget, self.tiling.tile_size, self.tiling.tile_overlap, self.default_max_latent_side(), decode_chunk
        )

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
        num_inference_steps: int = DEFAULT_SAMPLING["num_inference_steps"],
        sampler: str = DEFAULT_SAMPLING["sampler"],
        eta: float | None = None,
        generator: Generator = None,
        num_samples: int = 1,
        latent_size: tuple[int, int] | None = None,
        max_latent_side: int | None = None,
        decode_chunk: int = 65536,
        autocast_dtype: torch.dtype | None = None,
        lr_consistency: bool = DEFAULT_SAMPLING["lr_consistency"],
        strength: float = DEFAULT_SAMPLING["strength"],
    ) -> UpscaleOutput:
        """Upsample each image `num_samples` times; a list of generators gives one seed per output image.

        `lr_consistency` replaces the output's low frequencies with the input's (`pipelines.consistency`):
        the output then shrinks back to the input, whatever colour drift the sampled latent has.
        `strength` < 1 starts the sampler from the encoded input noised to that fraction of the schedule
        instead of from pure noise (1, the paper's setting: every step from pure noise). The defaults are
        `DEFAULT_SAMPLING`; `**PAPER_SAMPLING` gives the paper's. Large images: `enable_tiling`;
        `decode_chunk` bounds the query points rendered per step (lowered to fit the memory).
        """
        if num_samples < 1:
            raise UserError(f"the number of samples must be at least 1, got {num_samples}")
        low_res = self.as_batch(images)
        out_size, latent_hw = self.working_size(tuple(low_res.shape[-2:]), scale, size, latent_size, max_latent_side)
        plan = self.plan_memory(len(low_res) * num_samples, latent_hw, out_size, decode_chunk)
        latent_scale = self.denoiser.config.latent_scale
        with self.precision(autocast_dtype):
            condition = self.encode_condition(low_res, latent_hw, plan).repeat_interleave(num_samples, dim=0) * latent_scale
            sample = sample_latents(
                self.sampling_denoiser(plan),
                self.make_sampler(sampler),
                tuple(condition.shape),
                condition,
                num_inference_steps,
                self.resolve_eta(sampler, eta),
                generator,
                self.progress_bar,
                start=self.denoiser.diffusion_target(condition, condition),
                strength=strength,
            )
            latents = self.denoiser.latent_from(sample, condition) / latent_scale
            del condition
            upscaled = self.decode_latents(latents, out_size, plan)
        if lr_consistency:
            enforce_low_res_consistency(upscaled, low_res.repeat_interleave(num_samples, dim=0))
        return UpscaleOutput(images=upscaled, latents=latents, tiling=plan)

    def sampling_denoiser(self, plan: TilePlan) -> Denoiser:
        """The denoiser, or its tiled form when the plan samples in tiles."""
        if plan.sample_tile is None:
            return self.denoiser
        return TiledDenoiser(self.denoiser, plan.sample_tile, plan.sample_overlap, plan.tile_batch)

    def decode_latents(self, latents: torch.Tensor, out_size: tuple[int, int], plan: TilePlan) -> torch.Tensor:
        """Raw latents rendered at (H, W) in [-1, 1], whole or in the plan's tiles."""
        if plan.code_tile is None:
            return self.render(latents, out_size, plan.decode_chunk)
        return tiled_decode(self.autoencoder, latents, out_size, plan.code_tile, plan.decode_chunk, plan.stat_tiles).clamp_(-1, 1)

    def encode_condition(self, low_res: torch.Tensor, latent_hw: tuple[int, int], plan: TilePlan) -> torch.Tensor:
        """The unscaled float32 latent of the input resized to the working image size (which is only
        held while this runs: at 24 megapixels it is the largest tensor of the run)."""
        factor = self.autoencoder.downsample_factor
        conditioning_image = resize(low_res, (latent_hw[0] * factor, latent_hw[1] * factor))
        if plan.code_tile is None:
            return self.autoencoder.encode(conditioning_image).float()
        return tiled_encode(self.autoencoder, conditioning_image, plan.code_tile, plan.stat_tiles).float()
