"""Evaluation metrics, each with its conventions stated.

Images are (B,3,H,W) tensors in [-1, 1] (model I/O; `to_unit` / `from_unit` convert to and from [0, 1]);
per-image results have shape (B,).

Fidelity (`psnr_ssim.py`, basicsr semantics on the [0, 255] scale):
    psnr, ssim, ms_ssim(images, reference, channel="rgb"|"y", crop_border=0)
Protocols (`protocols.py`): metric_settings(name, scale, resize="matlab") -> MetricSettings with
    .psnr / .ssim / .as_dict(); names in PROTOCOLS: liif-benchmark, liif-div2k, paper.
LR synthesis (`resize.py`): resize(images, (H, W), method) with method in RESIZE_METHODS ("matlab",
    "pil"); imresize (MATLAB, by scale or size); synthesize_lr (resize + 8-bit rounding).
Colour (`color.py`): mean_colour_error (largest per-channel shift of the mean, [0, 255] scale).
No ground truth (`consistency.py`): lr_consistency, diversity, self_ssim.
Distribution (`features.py`): frechet_distance, kernel_inception_distance, precision_recall over (N, D)
    features; load_feature_extractor(path | None) -> FeatureExtractor | Unavailable.
Perceptual (`lpips.py`): load_lpips(alexnet_path, linear_path) -> LPIPS | Unavailable.
A metric without its pretrained weights is an `Unavailable(reason)`, never a number.
"""

from .color import from_unit, mean_colour_error, quantize_8bit, rgb_to_y, to_unit
from .consistency import diversity, lr_consistency, self_ssim
from .features import FeatureExtractor, frechet_distance, kernel_inception_distance, load_feature_extractor, precision_recall
from .lpips import LPIPS, load_lpips
from .protocols import PROTOCOLS, MetricSettings, metric_settings
from .psnr_ssim import ms_ssim, psnr, ssim
from .resize import RESIZE_METHODS, imresize, resize, synthesize_lr
from .weights import Unavailable

__all__ = [
    "FeatureExtractor",
    "LPIPS",
    "MetricSettings",
    "PROTOCOLS",
    "RESIZE_METHODS",
    "Unavailable",
    "diversity",
    "frechet_distance",
    "from_unit",
    "imresize",
    "kernel_inception_distance",
    "load_feature_extractor",
    "load_lpips",
    "mean_colour_error",
    "lr_consistency",
    "metric_settings",
    "ms_ssim",
    "precision_recall",
    "psnr",
    "quantize_8bit",
    "resize",
    "rgb_to_y",
    "self_ssim",
    "ssim",
    "synthesize_lr",
    "to_unit",
]
