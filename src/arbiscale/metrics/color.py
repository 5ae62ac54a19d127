"""Value ranges and the BT.601 luma that the "Y channel" protocols measure.

Model I/O is [-1, 1]; metrics report on the 8-bit scale [0, 255] that basicsr, LIIF and MATLAB use, so
a PSNR here equals theirs on the same pixels.
"""

from __future__ import annotations

import torch

# basicsr / MATLAB rgb2ycbcr, first row: inputs in [0, 1], luma in [16, 235] on the [0, 255] scale.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (model I/O) -> [0, 1]."""
    return (images + 1) / 2


def from_unit(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (model I/O)."""
    return images * 2 - 1


def to_8bit_scale(images: torch.Tensor, channel: str) -> torch.Tensor:
    """(B,3,H,W) in [-1, 1] -> float64 on the [0, 255] scale: RGB (B,3,H,W) or BT.601 luma (B,1,H,W).

    Values are clamped to [-1, 1] first: every protocol measures displayable images.
    """
    unit = to_unit(images.clamp(-1, 1).to(torch.float64))
    if channel == "rgb":
        return unit * 255
    if channel == "y":
        return rgb_to_y(unit)
    raise ValueError(f"channel must be 'rgb' or 'y', got {channel!r}")


def rgb_to_y(unit_images: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) RGB in [0, 1] -> (B,1,H,W) luma Y = 16 + 65.481 R + 128.553 G + 24.966 B, on [0, 255]."""
    if unit_images.dim() != 4 or unit_images.shape[1] != 3:
        raise ValueError(f"expected RGB images (B,3,H,W), got shape {tuple(unit_images.shape)}")
    weights = torch.tensor(_Y_WEIGHTS, dtype=unit_images.dtype, device=unit_images.device).view(1, 3, 1, 1)
    return (unit_images * weights).sum(dim=1, keepdim=True) + _Y_OFFSET


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """Clamp and round [-1, 1] images to the 256 levels a PNG stores, staying in [-1, 1]."""
    return from_unit(torch.round(to_unit(images.clamp(-1, 1)) * 255) / 255)


def mean_colour_error(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) largest per-channel difference of mean colour, on the [0, 255] scale: a colour cast
    (e.g. a sampler that turns a photo blue) shows here even where PSNR blames noise."""
    means = [to_8bit_scale(x, "rgb").mean(dim=(2, 3)) for x in (images, reference)]
    return (means[0] - means[1]).abs().amax(dim=1)
