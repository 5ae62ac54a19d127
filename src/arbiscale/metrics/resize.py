"""Bicubic resizing by name, for LR synthesis and for comparing images of different sizes.

Two conventions exist in SR evaluation and give different LR images (so different PSNRs); every report
names the one it used:
- "matlab": MATLAB `imresize(..., 'bicubic')`, antialiased when downscaling, mirrored borders. The
  DIV2K LR_bicubic files and the Set5/Set14/B100/Urban100 benchmark LR images were made with it.
- "pil": Pillow's BICUBIC resampling (antialiased, borders by truncated and renormalised kernel), as
  torchvision-on-PIL pipelines such as LIIF's training LR use.
Both use Keys' cubic kernel with a = -0.5 and agree exactly away from the borders.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..choices import RESIZE_METHODS
from ..errors import UserError
from .color import quantize_8bit


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`); support [-2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax.pow(2), ax.pow(3)
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def matlab_weight_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """(out_length, in_length) float64 matrix M with resized = M @ signal, built as MATLAB's `contributions`.

    Output pixel x (1-based) samples input position u = x/scale + (1 - 1/scale)/2; when downscaling with
    antialiasing the kernel is stretched to scale * cubic(scale * d) over a width of 4/scale; each row is
    normalised to sum 1 and taps outside the image are mirrored (1..n, n..1, repeated).
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64)
    distance = u.unsqueeze(1) - indices
    if scale < 1 and antialiasing:
        weights = scale * cubic(scale * distance)
    else:
        weights = cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    source = mirror[torch.remainder(indices.long() - 1, 2 * in_length)]
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    return matrix.scatter_add_(1, source, weights)


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise UserError(f"expected float images shaped (B,C,H,W), got {images.dtype} {tuple(images.shape)}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise UserError(f"output size must be two positive whole numbers (H, W), got {size}")
    return int(size[0]), int(size[1])


def imresize(images: torch.Tensor, *, scale: float | tuple[float, float] | None = None, size: tuple[int, int] | None = None, antialiasing: bool = True) -> torch.Tensor:
    """MATLAB `imresize(images, scale | [H W], 'bicubic')` on (B,C,H,W) float tensors; no clamping.

    Give exactly one of `scale` (output side = ceil(side * scale), weights from `scale` itself, as MATLAB
    does) or `size` (scale = output / input per axis). Axes are resized smallest scale first, as MATLAB.
    """
    _check_images(images)
    in_size = tuple(images.shape[-2:])
    if (scale is None) == (size is None):
        raise UserError("imresize needs exactly one of scale or size")
    if scale is not None:
        scales = (float(scale), float(scale)) if isinstance(scale, (int, float)) else tuple(float(s) for s in scale)
        if len(scales) != 2 or not all(math.isfinite(s) and s > 0 for s in scales):
            raise UserError(f"scale must be a positive number or a pair (sy, sx), got {scale}")
        # Rounding to 1e-9 first keeps float noise (e.g. 99 * (1/3)) from adding a pixel.
        out_size = tuple(math.ceil(round(n * s, 9)) for n, s in zip(in_size, scales))
    else:
        out_size = _check_size(size)
        scales = (out_size[0] / in_size[0], out_size[1] / in_size[1])
    result = images
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        matrix = matlab_weight_matrix(in_size[axis], out_size[axis], scales[axis], antialiasing)
        matrix = matrix.to(device=images.device, dtype=images.dtype)
        if axis == 0:
            result = torch.matmul(matrix, result)
        else:
            result = torch.matmul(result, matrix.T)
    return result


def pil_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow's BICUBIC resampling, computed by torch's antialiased bicubic (which reproduces it, without
    Pillow's 8-bit rounding between passes) on the images' own device."""
    _check_images(images)
    return F.interpolate(images, size=_check_size(size), mode="bicubic", antialias=True, align_corners=False)


def resize(images: torch.Tensor, size: tuple[int, int], method: str = "matlab") -> torch.Tensor:
    """Bicubic resize of (B,C,H,W) float images to `size` (H, W) with a named convention; no clamping."""
    if method == "matlab":
        return imresize(images, size=size)
    if method == "pil":
        return pil_resize(images, size)
    raise UserError(f"unknown resize method {method!r}: choose one of {', '.join(RESIZE_METHODS)}")


def synthesize_lr(hr: torch.Tensor, size: tuple[int, int], method: str = "matlab") -> torch.Tensor:
    """LR input from HR images in [-1, 1]: named bicubic downscale, then clamped and rounded to 8 bits,
    as the LR files of DIV2K and the benchmarks are stored."""
    return quantize_8bit(resize(hr, size, method))
