"""Low-resolution consistency: make an upsampled image agree with its input when shrunk back.

A diffusion sample can drift in colour and in its low frequencies (an under-trained model visibly
does). Adding back the upsampled difference between the input and the shrunk output,
x + up(lr - down(x)), replaces the output's low-frequency band with the input's and keeps the
model's high-frequency detail: the classic back-projection step (the range-space half of DDNM's
decomposition). The upsampled correction is computed in bands of rows, so a 200x output needs no
full-size temporary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..geometry import pixel_centres


def enforce_low_res_consistency(images: torch.Tensor, low_res: torch.Tensor, band_rows: int = 256) -> torch.Tensor:
    """Correct `images` (B, 3, H, W) in place towards `low_res` (B, 3, h, w), both in [-1, 1]."""
    height, width = images.shape[-2:]
    shrunk = F.interpolate(images, size=tuple(low_res.shape[-2:]), mode="bicubic", antialias=True, align_corners=False)
    residual = (low_res.to(images.dtype) - shrunk).contiguous()
    xs = pixel_centres(width, images.device, images.dtype)
    ys = pixel_centres(height, images.device, images.dtype)
    for top in range(0, height, band_rows):
        band = slice(top, min(height, top + band_rows))
        # grid_sample wants (x, y) pairs; bicubic with border padding is F.interpolate's bicubic upsampling.
        grid = torch.stack(torch.meshgrid(ys[band], xs, indexing="ij")[::-1], dim=-1)
        grid = grid.unsqueeze(0).expand(len(images), -1, -1, -1)
        images[..., band, :] += F.grid_sample(residual, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return images.clamp_(-1, 1)
