"""The bicubic baseline: what every upsampler must beat, with the same call shape as the models."""

from __future__ import annotations

import torch

from ..geometry import check_output_size, resize


def bicubic_upscale(lr_images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, h, w) in [-1, 1] -> (B, 3, H, W): bicubic interpolation, any size and aspect ratio."""
    return resize(lr_images, check_output_size(tuple(size)))
