"""Coordinates, cells, output sizes and the clamped antialiased resize: the conventions every other module shares.

Pixel centres live in [-1, 1], rows first: a coordinate is (y, x) and a size is (H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import UserError


def pixel_centres(length: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centres of `length` equal cells covering [-1, 1]."""
    half_cell = 1.0 / length
    return torch.linspace(-1 + half_cell, 1 - half_cell, length, device=device, dtype=dtype)


def coord_grid(size: tuple[int, int], device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H*W, 2) pixel-centre coordinates (y, x) of an H x W image, row-major."""
    height, width = size
    ys = pixel_centres(height, device, dtype)
    xs = pixel_centres(width, device, dtype)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def cell_size(size: tuple[int, int], device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(2,) extent (dy, dx) of one output pixel in [-1, 1] coordinates."""
    height, width = size
    return torch.tensor([2.0 / height, 2.0 / width], device=device, dtype=dtype)


def scaled_size(size: tuple[int, int], scale: float | tuple[float, float]) -> tuple[int, int]:
    """Output (H, W) for an input size and a scale (one factor, or one per axis); rounds to nearest."""
    scale_h, scale_w = (scale, scale) if isinstance(scale, (int, float)) else scale
    for factor in (scale_h, scale_w):
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"scale must be a positive finite number, got {factor}")
    return max(1, round(size[0] * scale_h)), max(1, round(size[1] * scale_w))


def parse_size(text: str) -> tuple[int, int]:
    """'384x256' -> (256, 384): sizes are written WIDTHxHEIGHT, as image tools write them (ImageMagick,
    ffmpeg, Pillow's `size`), and returned (H, W) like every size in the code. A bare number is refused:
    it reads as a square to some and as a width (aspect kept) to others."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT with whole numbers, e.g. 384x256") from None
    if len(values) == 1:
        raise ValueError(f"size {text!r} has one number: give WIDTHxHEIGHT, e.g. {values[0]}x{values[0]} for a square")
    if len(values) != 2 or min(values) <= 0:
        raise ValueError(f"size {text!r} must be WIDTHxHEIGHT with two positive whole numbers, e.g. 384x256")
    width, height = values
    return height, width


def format_size(size: tuple[int, int]) -> str:
    """(H, W) -> 'WxH', the form of `parse_size`, for file names and messages."""
    return f"{size[1]}x{size[0]}"


def check_output_size(size: tuple[int, int]) -> tuple[int, int]:
    """An explicit (H, W), refused unless it is two positive whole numbers."""
    if len(size) != 2 or any(isinstance(side, bool) or not isinstance(side, int) or side <= 0 for side in size):
        raise UserError(f"output size must be two positive whole numbers (H, W), got {tuple(size)}")
    return int(size[0]), int(size[1])


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of (3, H, W) or (B, 3, H, W) to (H', W'), clamped to [-1, 1].

    Antialiasing matters when shrinking: it is what a camera or PIL would produce, so targets and LR
    inputs made here carry no aliasing the model would have to learn.
    """
    batched = images.dim() == 4
    batch = images if batched else images.unsqueeze(0)
    if tuple(batch.shape[-2:]) == tuple(size):
        return images
    dtype = batch.dtype
    out = F.interpolate(batch.float(), size=tuple(size), mode="bicubic", antialias=True, align_corners=False)
    out = out.clamp(-1, 1).to(dtype)
    return out if batched else out[0]
