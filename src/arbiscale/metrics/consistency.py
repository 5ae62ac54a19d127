"""Metrics without ground truth: agreement with the LR input, spread across samples, agreement across sizes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from ..choices import SELF_SSIM_MEASURES
from ..errors import UserError
from .color import to_unit
from .psnr_ssim import ms_ssim, ssim
from .resize import resize


def lr_consistency(sr: torch.Tensor, lr: torch.Tensor, method: str = "matlab") -> torch.Tensor:
    """(B,) MSE on the [0, 1] scale between `sr` downscaled to the LR size (named bicubic) and `lr`.

    Both in [-1, 1]. An output that explains its input scores ~0 whatever its detail (SR3/IDM's check);
    use the resize method that made the LR images.
    """
    if sr.dim() != 4 or lr.dim() != 4 or sr.shape[:2] != lr.shape[:2]:
        raise UserError(f"SR batch {tuple(sr.shape)} and LR batch {tuple(lr.shape)} do not pair up: both must be (B,C,H,W) with the same B and C")
    downscaled = resize(sr, tuple(lr.shape[-2:]), method)
    return (to_unit(downscaled) - to_unit(lr)).pow(2).flatten(1).mean(dim=1)


def diversity(samples: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """(B,) mean over all sample pairs (i < j) of the mean absolute pixel difference on the [0, 1] scale.

    `samples`: K >= 2 tensors (B,3,H,W) in [-1, 1], sample k of every input image in the k-th tensor.
    0 means the sampler ignores its noise; regression models score 0 by construction.
    """
    if len(samples) < 2:
        raise UserError(f"diversity needs at least 2 samples of each input, got {len(samples)}: raise the number of samples")
    shape = samples[0].shape
    if any(s.shape != shape for s in samples):
        raise UserError("diversity needs every sample batch to have the same shape (same inputs, same output size)")
    distances = [(to_unit(a) - to_unit(b)).abs().flatten(1).mean(dim=1) for a, b in itertools.combinations(samples, 2)]
    return torch.stack(distances).mean(dim=0)


def self_ssim(renders: Sequence[torch.Tensor], method: str = "matlab", measure: str = "ssim") -> torch.Tensor:
    """(B,N,N) scale consistency (ScaleParty's SelfSSIM) of N renders of the same latents at several sizes.

    Entry (i, j) compares render i with render j resized (named bicubic) to render i's size, RGB, no
    shave; 1 on the diagonal. `measure` "ms-ssim" needs every render at least 176 px on its short side.
    Average over dim 0 for the matrix of a dataset.
    """
    if measure not in SELF_SSIM_MEASURES:
        raise UserError(f"unknown SelfSSIM measure {measure!r}: choose one of {', '.join(SELF_SSIM_MEASURES)}")
    if len(renders) < 1 or any(r.dim() != 4 or r.shape[:2] != renders[0].shape[:2] for r in renders):
        raise UserError("SelfSSIM needs a list of render batches (B,3,H,W) with the same B: one batch per size")
    score = ssim if measure == "ssim" else ms_ssim
    count = len(renders)
    matrix = renders[0].new_empty((renders[0].shape[0], count, count), dtype=torch.float64)
    for i, target in enumerate(renders):
        for j, other in enumerate(renders):
            if other.shape[-2:] != target.shape[-2:]:
                other = resize(other, tuple(target.shape[-2:]), method)
            matrix[:, i, j] = score(other, target)
    return matrix
