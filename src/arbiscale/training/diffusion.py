"""Stages 2 and 3: the latent denoiser (SR or generation), then its alignment with the decoder.

Both run on the frozen autoencoder. Stage 2 minimises the usual noise-prediction MSE on scaled
latents of HR crops; for SR the crop, degraded by a random factor and resized back, is encoded as the
condition. Stage 3 (alignment) decodes the one-step clean-latent estimate through the frozen implicit
decoder, with gradients, at a random output scale up to image resolution, and adds its L1 error to
the denoising error, each weighted per sample by the clipped SNR (see `alignment`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import nn
from torch.utils.data import Dataset, default_collate

from ..data.crops import ArbitraryScaleCrops, item_generator
from ..data.images import resize
from ..geometry import scaled_size
from ..metrics.psnr_ssim import psnr
from ..models.autoencoder import ImplicitAutoencoder
from ..models.unet import LatentDenoiser, measure_latent_scale
from ..pipelines import GenerationPipeline, UpscalePipeline
from ..sampling.sample import predict_clean_latent
from .alignment import alignment_loss, clipped_snr
from .loop import TrainingTask

PIPELINES = {"sr": UpscalePipeline, "gen": GenerationPipeline}


class SuperResolutionCrops(Dataset):
    """Stage-1 items plus "condition_image": the crop shrunk by r ~ U[min, max], then resized back.

    The pipeline conditions the same way at inference (LR resized to the working size, then encoded),
    so the range of r is the range of degradations the denoiser learns to undo at its working size.
    """

    def __init__(self, crops: ArbitraryScaleCrops, min_lr_factor: float = 1.5, max_lr_factor: float = 8.0) -> None:
        if not 1 <= min_lr_factor <= max_lr_factor:
            raise ValueError(f"need 1 <= min_lr_factor <= max_lr_factor, got {min_lr_factor} and {max_lr_factor}")
        self.crops = crops
        self.min_lr_factor = min_lr_factor
        self.max_lr_factor = max_lr_factor

    def set_epoch(self, epoch: int) -> None:
        self.crops.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.crops[index]
        epoch = 0 if self.crops.deterministic else self.crops.epoch
        generator = item_generator(self.crops.seed, epoch, index, 1)
        factor = self.min_lr_factor + (self.max_lr_factor - self.min_lr_factor) * float(torch.rand((), generator=generator))
        crop_size = tuple(item["image"].shape[-2:])
        low_resolution = resize(item["image"], scaled_size(crop_size, 1 / factor))
        item["condition_image"] = resize(low_resolution, crop_size)
        return item


def first_items(dataset: Dataset, count: int) -> dict[str, torch.Tensor]:
    """The first `count` items as one batch (validation on a deterministic dataset)."""
    return default_collate([dataset[i] for i in range(min(count, len(dataset)))])


class LatentDiffusionTask(TrainingTask):
    """Stage 2: noise prediction on scaled latents; the final save is a whole pipeline folder."""

    def __init__(
        self,
        denoiser: LatentDenoiser,
        autoencoder: ImplicitAutoencoder,
        noise_scheduler: SchedulerMixin,
        dataset: Dataset,
        validation_batch: dict[str, torch.Tensor],
    ) -> None:
        self.model = denoiser
        self.autoencoder = autoencoder.requires_grad_(False)
        self.frozen = (self.autoencoder,)
        self.noise_scheduler = noise_scheduler
        self.dataset = dataset
        self.validation_batch = validation_batch
        self.task = denoiser.config.task
        self.latent_scale = denoiser.config.latent_scale

    @torch.no_grad()
    def scaled_latents(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(clean latent, SR condition or None), both in the denoiser's scaled space."""
        clean = self.autoencoder.encode(batch["image"]).float() * self.latent_scale
        if self.task != "sr":
            return clean, None
        return clean, self.autoencoder.encode(batch["condition_image"]).float() * self.latent_scale

    def noised(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noise, timesteps, noisy latent) with t uniform over the training schedule."""
        device = clean.device if generator is None else generator.device
        noise = torch.randn(clean.shape, generator=generator, device=device).to(clean.device)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (clean.shape[0],), generator=generator, device=device).to(clean.device)
        return noise, timesteps, self.noise_scheduler.add_noise(clean, noise, timesteps)

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        clean, condition = self.scaled_latents(batch)
        noise, timesteps, noisy = self.noised(clean)
        return (model(noisy, timesteps, condition).float() - noise).square().mean(), {}

    @staticmethod
    def validation_generator() -> torch.Generator:
        """The same noise and timesteps at every validation, so the numbers are comparable."""
        return torch.Generator().manual_seed(0)

    def validate(self, model: nn.Module) -> dict[str, float]:
        batch = {k: v.to(model.device) for k, v in self.validation_batch.items()}
        clean, condition = self.scaled_latents(batch)
        noise, timesteps, noisy = self.noised(clean, self.validation_generator())
        return {"val_loss": (model(noisy, timesteps, condition).float() - noise).square().mean().item()}

    def save(self, model: nn.Module, directory: Path) -> None:
        PIPELINES[self.task](self.autoencoder, model, self.noise_scheduler).save_pretrained(directory)


class AlignmentTask(LatentDiffusionTask):
    """Stage 3: L_align = mean_b w_b (denoise_b + recon_b); only the denoiser is updated."""

    def __init__(self, *args, max_snr: float = 5.0, denoise_weight: float = 1.0, recon_weight: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_snr = max_snr
        self.denoise_weight = denoise_weight
        self.recon_weight = recon_weight

    def aligned(self, model: nn.Module, batch: dict, generator: torch.Generator | None = None):
        clean, condition = self.scaled_latents(batch)
        noise, timesteps, noisy = self.noised(clean, generator)
        noise_pred = model(noisy, timesteps, condition).float()
        alphas_cumprod = self.noise_scheduler.alphas_cumprod
        clean_pred = predict_clean_latent(noisy, noise_pred, alphas_cumprod, timesteps) / self.latent_scale
        return noise, timesteps, noise_pred, clean_pred

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        noise, timesteps, noise_pred, clean_pred = self.aligned(model, batch)
        decoded = self.autoencoder.decode_at(clean_pred, batch["coord"], batch["cell"])
        weights = clipped_snr(self.noise_scheduler.alphas_cumprod, timesteps, self.max_snr)
        return alignment_loss(noise_pred, noise, decoded, batch["target"], weights, self.denoise_weight, self.recon_weight)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Denoising loss, and PSNR of the one-step clean estimate rendered at the crop's size."""
        metrics = super().validate(model)
        batch = {k: v.to(model.device) for k, v in self.validation_batch.items()}
        _, _, _, clean_pred = self.aligned(model, batch, self.validation_generator())
        images = batch["image"]
        metrics["val_psnr_onestep"] = psnr(self.autoencoder.decode(clean_pred, tuple(images.shape[-2:])), images).mean().item()
        return metrics


@torch.no_grad()
def latent_scale_of(autoencoder: ImplicitAutoencoder, dataset: Dataset, num_items: int = 256, batch_size: int = 16) -> float:
    """1 / std of the latents of the first `num_items` items (CompVis `scale_by_std`), measured once."""
    device = next(autoencoder.parameters()).device
    count = min(num_items, len(dataset))
    batches = (
        autoencoder.encode(torch.stack([dataset[i]["image"] for i in range(start, min(start + batch_size, count))]).to(device))
        for start in range(0, count, batch_size)
    )
    return measure_latent_scale(batches)
