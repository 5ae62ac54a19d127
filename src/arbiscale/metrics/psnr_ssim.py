"""PSNR, SSIM and MS-SSIM with basicsr semantics: 8-bit scale, RGB or Y, `crop_border` pixels shaved.

Inputs are (B,3,H,W) in [-1, 1] (model I/O; clamped), results are per image, shape (B,). The arithmetic is
float64 on the [0, 255] scale, so the numbers equal basicsr's `calculate_psnr` / `calculate_ssim` and
scikit-image's `peak_signal_noise_ratio` / `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)` on the same pixels. Nothing is rounded to 8 bits here:
round first (`quantize_8bit`) to score images as they would be saved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from .color import to_8bit_scale

DATA_RANGE = 255.0
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
# Wang, Simoncelli & Bovik 2003, the weights every MS-SSIM implementation uses.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_C1 = (0.01 * DATA_RANGE) ** 2
_C2 = (0.03 * DATA_RANGE) ** 2


def _prepare(images: torch.Tensor, reference: torch.Tensor, channel: str, crop_border: int) -> tuple[torch.Tensor, torch.Tensor]:
    if images.dim() != 4 or images.shape[1] != 3:
        raise UserError(f"expected RGB images shaped (B,3,H,W), got {tuple(images.shape)}: pass a batch of RGB images")
    if images.shape != reference.shape:
        raise UserError(f"image shape {tuple(images.shape)} differs from reference shape {tuple(reference.shape)}: resize or crop the output to the ground-truth size first")
    if channel not in ("rgb", "y"):
        raise UserError(f"unknown channel {channel!r}: use 'rgb' or 'y'")
    if crop_border < 0:
        raise UserError(f"crop_border must be >= 0, got {crop_border}")
    height, width = images.shape[-2:]
    if 2 * crop_border >= min(height, width):
        raise UserError(f"crop_border {crop_border} removes the whole {height}x{width} image: use a smaller border or larger images")
    x = to_8bit_scale(images, channel)
    y = to_8bit_scale(reference, channel)
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    return x, y


def psnr(images: torch.Tensor, reference: torch.Tensor, *, channel: str = "rgb", crop_border: int = 0) -> torch.Tensor:
    """(B,) PSNR in dB against `reference`; identical images give inf, as in basicsr."""
    x, y = _prepare(images, reference, channel, crop_border)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(DATA_RANGE**2 / mse)


def _gaussian_line(device: torch.device) -> torch.Tensor:
    offsets = torch.arange(WINDOW_SIZE, dtype=torch.float64, device=device) - (WINDOW_SIZE - 1) / 2
    line = torch.exp(-offsets.pow(2) / (2 * WINDOW_SIGMA**2))
    return line / line.sum()


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,C) mean SSIM and mean contrast-structure term over the valid (unpadded) window positions."""
    batch, channels, height, width = x.shape
    line = _gaussian_line(x.device)
    # The 11x11 Gaussian is separable: two 1-D passes over all five moments at once.
    moments = torch.stack([x, y, x * x, y * y, x * y]).reshape(-1, 1, height, width)
    blurred = F.conv2d(F.conv2d(moments, line.view(1, 1, -1, 1)), line.view(1, 1, 1, -1))
    mu_x, mu_y, xx, yy, xy = blurred.reshape(5, batch, channels, *blurred.shape[-2:])
    var_x = xx - mu_x.pow(2)
    var_y = yy - mu_y.pow(2)
    cov = xy - mu_x * mu_y
    cs_map = (2 * cov + _C2) / (var_x + var_y + _C2)
    ssim_map = (2 * mu_x * mu_y + _C1) / (mu_x.pow(2) + mu_y.pow(2) + _C1) * cs_map
    return ssim_map.mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def _check_window_fits(x: torch.Tensor, what: str) -> None:
    height, width = x.shape[-2:]
    if min(height, width) < WINDOW_SIZE:
        raise UserError(f"{what} needs at least {WINDOW_SIZE}x{WINDOW_SIZE} pixels after cropping, got {height}x{width}: use larger images or a smaller crop_border")


def ssim(images: torch.Tensor, reference: torch.Tensor, *, channel: str = "rgb", crop_border: int = 0) -> torch.Tensor:
    """(B,) SSIM (11x11 Gaussian window, sigma 1.5, constants for range 255), averaged over channels."""
    x, y = _prepare(images, reference, channel, crop_border)
    _check_window_fits(x, "SSIM")
    return _ssim_and_cs(x, y)[0].mean(dim=1)


def ms_ssim_min_size(scales: int = 5) -> int:
    """Smallest side (after cropping) for which every scale still holds one 11x11 window."""
    return WINDOW_SIZE * 2 ** (scales - 1)


def ms_ssim(images: torch.Tensor, reference: torch.Tensor, *, channel: str = "rgb", crop_border: int = 0, scales: int = 5) -> torch.Tensor:
    """(B,) multi-scale SSIM: contrast-structure at the finer scales, full SSIM at the coarsest.

    Scales are halved by 2x2 averaging (odd last rows/columns dropped). Fewer than 5 scales use the first
    standard weights renormalised to sum 1. Negative per-scale terms are clipped to 0 before the
    fractional powers (as pytorch-msssim does), so the result stays real.
    """
    if not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise UserError(f"MS-SSIM scales must be 1..{len(MS_SSIM_WEIGHTS)}, got {scales}")
    x, y = _prepare(images, reference, channel, crop_border)
    height, width = x.shape[-2:]
    if min(height, width) < ms_ssim_min_size(scales):
        raise UserError(
            f"MS-SSIM with {scales} scales needs images of at least {ms_ssim_min_size(scales)}x{ms_ssim_min_size(scales)} "
            f"after cropping, got {height}x{width}: use fewer scales or SSIM"
        )
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64, device=x.device)
    if scales < len(MS_SSIM_WEIGHTS):  # the published five sum to 1.0001 and are used as they are
        weights = weights / weights.sum()
    terms = []
    for level in range(scales):
        ssim_value, cs_value = _ssim_and_cs(x, y)
        terms.append(ssim_value if level == scales - 1 else cs_value)
        if level < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(terms, dim=0).clamp_min(0)
    return stacked.pow(weights.view(-1, 1, 1)).prod(dim=0).mean(dim=1)
