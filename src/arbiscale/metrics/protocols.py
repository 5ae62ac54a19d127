"""Named PSNR/SSIM protocols, so every number is reported with the rules that produced it.

| name | channel | shave per border | origin |
|---|---|---|---|
| liif-benchmark | Y (BT.601) | ceil(scale) | LIIF on Set5/Set14/B100/Urban100 |
| liif-div2k | RGB | ceil(scale) + 6 | LIIF on DIV2K validation |
| paper | RGB | 0 | Kim & Kim 2024 |

LIIF shaves `scale` pixels; non-integer scales round up so never less is shaved than at the next
integer scale. The LR resize method ("matlab" by default, see `resize.py`) is part of the settings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..choices import METRIC_PROTOCOLS as _PROTOCOLS
from ..choices import RESIZE_METHODS
from ..errors import UserError
from .psnr_ssim import psnr, ssim

PROTOCOLS = tuple(_PROTOCOLS)


@dataclass(frozen=True)
class MetricSettings:
    """Everything a PSNR/SSIM number depends on; `as_dict()` goes into every report."""

    protocol: str
    scale: float
    channel: str
    crop_border: int
    resize: str

    def psnr(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(B,) PSNR under this protocol."""
        return psnr(images, reference, channel=self.channel, crop_border=self.crop_border)

    def ssim(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(B,) SSIM under this protocol."""
        return ssim(images, reference, channel=self.channel, crop_border=self.crop_border)

    def as_dict(self) -> dict:
        return asdict(self)


def metric_settings(protocol: str, scale: float, resize: str = "matlab") -> MetricSettings:
    """The settings of a named protocol at an upsampling `scale` (> 0), with the LR `resize` method."""
    if protocol not in _PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if resize not in RESIZE_METHODS:
        raise UserError(f"unknown resize method {resize!r}: choose one of {', '.join(RESIZE_METHODS)}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise UserError(f"scale must be a positive number, got {scale!r}")
    channel, extra = _PROTOCOLS[protocol]
    crop_border = 0 if extra is None else math.ceil(round(scale, 9)) + extra
    return MetricSettings(protocol=protocol, scale=float(scale), channel=channel, crop_border=crop_border, resize=resize)
