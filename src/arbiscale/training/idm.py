"""The IDM-style baseline's training: image-space denoising on the SR crops stage 2 learns from.

The items are stage 2's (`SuperResolutionCrops`: an HR crop, and the crop shrunk by r ~ U[min, max]
and resized back), so both models see the same photos, crops and degradations; IDM denoises the HR
crop itself at its full resolution, told the factor r (`condition_scale`) since the resized-back LR
no longer shows it. The objective is the model's own (`IDMStyleSR.objective`), the MSE of its
prediction as in stage 2. Validation: the loss on fixed crops, noise and noise levels, and the PSNR of
the one-step clean estimate (the same numbers stage 2 logs, here in image space).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from ..baselines.idm import IDMStyleSR
from ..metrics.psnr_ssim import psnr
from ..sampling.sample import predict_clean_latent
from .diffusion import noised, objective_target, validation_generator
from .loop import TrainingTask


class IDMTask(TrainingTask):
    """`IDMStyleSR` as a `TrainingTask` on batches of {"image", "condition_image", "condition_scale"}."""

    def __init__(self, model: IDMStyleSR, dataset: Dataset, validation_batch: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.dataset = dataset
        self.validation_batch = validation_batch
        self.noise_scheduler = model.noise_schedule()

    def predicted(self, model: nn.Module, batch: dict, generator: torch.Generator | None = None):
        """(model output, its target, one-step estimate of the clean image) at random noise levels."""
        clean = batch["image"].float()
        noise, timesteps, noisy = noised(self.noise_scheduler, clean, generator)
        output = model(noisy, timesteps, batch["condition_image"], batch["condition_scale"]).float()
        prediction_type = self.noise_scheduler.config.prediction_type
        estimate = predict_clean_latent(noisy, output, self.noise_scheduler.alphas_cumprod, timesteps, prediction_type)
        return output, objective_target(self.noise_scheduler, clean, noise, timesteps), estimate

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        output, target, _ = self.predicted(model, batch)
        return (output - target).square().mean(), {}

    def validate(self, model: nn.Module) -> dict[str, float]:
        batch = {key: value.to(model.device) for key, value in self.validation_batch.items()}
        output, target, estimate = self.predicted(model, batch, validation_generator())
        return {"val_loss": (output - target).square().mean().item(), "val_psnr_onestep": psnr(estimate.clamp(-1, 1), batch["image"]).mean().item()}
