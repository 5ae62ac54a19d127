"""Stages 2 and 3: the latent denoiser (SR or generation), then its alignment with the decoder.

Both run on the frozen autoencoder. Stage 2 minimises the MSE of the denoiser's output (noise or
v, as the noise schedule's `prediction_type` says) on scaled latents of HR crops, or on their
residual over the condition (`LatentDenoiser.residual`); for SR the crop, degraded by a random
factor and resized back, is encoded as the condition. `EncodedCrops` encodes a pool of crops once,
so the steps spend their time in the UNet. Stage 3 (alignment) decodes the one-step clean-latent estimate through the frozen implicit
decoder, with gradients, at a random output scale up to image resolution, and adds its L1 error to
the denoising error, each weighted per sample by the clipped SNR (see `alignment`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from ..choices import ALIGN_WEIGHTINGS
from ..data.crops import ArbitraryScaleCrops, item_generator
from ..data.images import resize
from ..files import atomic_path
from ..geometry import scaled_size
from ..metrics.psnr_ssim import psnr
from ..models.autoencoder import ImplicitAutoencoder
from ..models.unet import LatentDenoiser, measure_latent_scale
from ..pipelines import PIPELINE_FOR_TASK
from ..sampling.sample import predict_clean_latent
from .alignment import alignment_loss, sample_weights
from .loop import TrainingTask

# The encoded pool in the run folder: a resumed run reads it instead of encoding again.
ENCODED_CROPS_FILE = "encoded_crops.safetensors"


def pool_item(items: Dataset, index: int) -> dict[str, torch.Tensor]:
    """Item `index` of a pool drawn from `items`: item index mod N of epoch index // N, so a pool larger than one
    epoch holds distinct crops and degradations."""
    items.set_epoch(index // len(items))
    return items[index % len(items)]


def cached_pool(cache_file: Path, size: int, make: Callable[[], dict[str, torch.Tensor]], write: bool = True) -> dict[str, torch.Tensor]:
    """The pool of `size` items saved at `cache_file`, or `make()`'s when it is absent, damaged or of another size
    (then saved there atomically if `write`: one process under DDP). A resumed run reads its pool back this way."""
    try:
        with safe_open(cache_file, "pt") as handle:
            if (handle.metadata() or {}).get("size") == str(size):
                return {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, ValueError, RuntimeError, SafetensorError):
        pass
    fields = make()
    if write:
        with atomic_path(cache_file, overwrite=True) as temp:
            save_file(fields, temp, metadata={"size": str(size)})
    return fields


class SuperResolutionCrops(Dataset):
    """Stage-1 items plus "condition_image": the crop shrunk by r ~ U[min, max], then resized back, and
    "condition_scale": (2,) the crop's sides over the shrunk copy's (r per axis, after rounding).

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
        item["condition_scale"] = torch.tensor(crop_size) / torch.tensor(low_resolution.shape[-2:])
        return item


class EncodedCrops(Dataset):
    """A fixed pool of `size` training items whose latents the frozen encoder computed once.

    The encoder is frozen from stage 2 on, so encoding the crops at every step (40% of a step's
    time in the small preset) repeats work. The pool draws item j from epoch j // len(items) of the
    crop dataset, so it holds `size` distinct crops and degradations; the loop reshuffles it every
    epoch. "image" and "condition_image" are replaced by the unscaled float32 "latent" and
    "condition_latent"; every other field (alignment's queries) is kept. With `cache_file` the pool
    is written there once (atomically; by one process under DDP) and read back by a resumed run
    instead of encoded again.
    """

    IMAGE_KEYS = {"image": "latent", "condition_image": "condition_latent"}

    def __init__(self, items: Dataset, autoencoder: ImplicitAutoencoder, size: int, batch_size: int = 64, cache_file: Path | None = None, write_cache: bool = True) -> None:
        if size < 1:
            raise ValueError(f"the pool needs at least one item, got {size}")
        self.size = size
        make = functools.partial(self._encode, items, autoencoder, size, batch_size)
        self.fields = make() if cache_file is None else cached_pool(cache_file, size, make, write_cache)

    def _encode(self, items: Dataset, autoencoder: ImplicitAutoencoder, size: int, batch_size: int) -> dict[str, torch.Tensor]:
        device = next(autoencoder.parameters()).device
        fields: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad(), tqdm(total=size, desc="encoding training crops") as progress:
            for start in range(0, size, batch_size):
                batch = [pool_item(items, j) for j in range(start, min(start + batch_size, size))]
                for key, value in default_collate(batch).items():
                    if key in self.IMAGE_KEYS:
                        key, value = self.IMAGE_KEYS[key], autoencoder.encode(value.to(device)).float().cpu()
                    fields.setdefault(key, []).append(value)
                progress.update(len(batch))
        return {key: torch.cat(values).contiguous() for key, values in fields.items()}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: values[index] for key, values in self.fields.items()}


def noised(scheduler: SchedulerMixin, clean: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noise, timesteps, noisy sample) with t uniform over the training schedule."""
    device = clean.device if generator is None else generator.device
    noise = torch.randn(clean.shape, generator=generator, device=device).to(clean.device)
    steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (clean.shape[0],), generator=generator, device=device).to(clean.device)
    return noise, timesteps, scheduler.add_noise(clean, noise, timesteps)


def objective_target(scheduler: SchedulerMixin, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the denoiser's output should equal for the schedule's prediction type."""
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(sample, noise, timesteps)
    return sample


def validation_generator() -> torch.Generator:
    """The same noise and timesteps at every validation, so the numbers are comparable."""
    return torch.Generator().manual_seed(0)


def first_items(dataset: Dataset, count: int) -> dict[str, torch.Tensor]:
    """The first `count` items as one batch (validation on a deterministic dataset)."""
    return default_collate([dataset[i] for i in range(min(count, len(dataset)))])


class LatentDiffusionTask(TrainingTask):
    """Stage 2: denoising on scaled latents (or their residuals); the final save is a whole pipeline folder."""

    def __init__(
        self,
        denoiser: LatentDenoiser,
        autoencoder: ImplicitAutoencoder,
        noise_scheduler: SchedulerMixin,
        dataset: Dataset,
        validation_batch: dict[str, torch.Tensor],
        pool_size: int = 0,
    ) -> None:
        self.model = self.denoiser = denoiser
        self.autoencoder = autoencoder.requires_grad_(False)
        self.frozen = (self.autoencoder,)
        self.noise_scheduler = noise_scheduler
        self.dataset = dataset
        self.validation_batch = validation_batch
        self.task = denoiser.config.task
        self.latent_scale = denoiser.config.latent_scale
        self.prediction_type = noise_scheduler.config.prediction_type
        self.pool_size = pool_size

    def prepare(self, run_dir: Path, is_main_process: bool) -> None:
        """With a `pool_size`, train on that many crops encoded once (`EncodedCrops`), kept in the run folder."""
        if self.pool_size:
            cache = run_dir / ENCODED_CROPS_FILE
            self.dataset = EncodedCrops(self.dataset, self.autoencoder, self.pool_size, cache_file=cache, write_cache=is_main_process)

    @torch.no_grad()
    def scaled_latents(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(clean latent, SR condition or None), both in the denoiser's scaled space; from the batch's
        latents when `EncodedCrops` computed them, else encoded here."""
        encoded = {
            latent_key: batch[latent_key] if latent_key in batch else self.autoencoder.encode(batch[image_key])
            for image_key, latent_key in EncodedCrops.IMAGE_KEYS.items()
            if image_key in batch or latent_key in batch
        }
        clean = encoded["latent"].float() * self.latent_scale
        if self.task != "sr":
            return clean, None
        return clean, encoded["condition_latent"].float() * self.latent_scale

    def predicted_clean(self, model: nn.Module, clean: torch.Tensor, condition: torch.Tensor | None, generator: torch.Generator | None = None):
        """(model output, its target, one-step estimate of the clean scaled latent) at random noise levels."""
        sample = self.denoiser.diffusion_target(clean, condition)
        noise, timesteps, noisy = noised(self.noise_scheduler, sample, generator)
        output = model(noisy, timesteps, condition).float()
        estimate = predict_clean_latent(noisy, output, self.noise_scheduler.alphas_cumprod, timesteps, self.prediction_type)
        target = objective_target(self.noise_scheduler, sample, noise, timesteps)
        return output, target, self.denoiser.latent_from(estimate, condition), timesteps

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        output, target, _, _ = self.predicted_clean(model, *self.scaled_latents(batch))
        return (output - target).square().mean(), {}

    def validate(self, model: nn.Module) -> dict[str, float]:
        """The training loss, and the MSE of the one-step clean-latent estimate (comparable across
        objectives), on fixed crops, noise and noise levels."""
        batch = {k: v.to(model.device) for k, v in self.validation_batch.items()}
        clean, condition = self.scaled_latents(batch)
        output, target, estimate, _ = self.predicted_clean(model, clean, condition, validation_generator())
        return {"val_loss": (output - target).square().mean().item(), "val_clean_mse": (estimate - clean).square().mean().item()}

    def save(self, model: nn.Module, directory: Path) -> None:
        PIPELINE_FOR_TASK[self.task](self.autoencoder, model, self.noise_scheduler).save_pretrained(directory)


class AlignmentTask(LatentDiffusionTask):
    """Stage 3: L_align = mean_b w_b (denoise_b + recon_b), w by `weighting`; only the denoiser is updated."""

    def __init__(self, *args, weighting: str = "clipped-snr", max_snr: float = 5.0, denoise_weight: float = 1.0, recon_weight: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if weighting not in ALIGN_WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}: use one of {', '.join(ALIGN_WEIGHTINGS)}")
        self.weighting = weighting
        self.max_snr = max_snr
        self.denoise_weight = denoise_weight
        self.recon_weight = recon_weight

    def aligned(self, model: nn.Module, batch: dict, generator: torch.Generator | None = None):
        """(model output, its target, timesteps, one-step clean latent, unscaled for the decoder)."""
        output, target, estimate, timesteps = self.predicted_clean(model, *self.scaled_latents(batch), generator)
        return output, target, timesteps, estimate / self.latent_scale

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        output, target, timesteps, clean_pred = self.aligned(model, batch)
        decoded = self.autoencoder.decode_at(clean_pred, batch["coord"], batch["cell"])
        weights = sample_weights(self.weighting, self.noise_scheduler.alphas_cumprod, timesteps, self.max_snr)
        return alignment_loss(output, target, decoded, batch["target"], weights, self.denoise_weight, self.recon_weight)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Denoising loss, and PSNR of the one-step clean estimate rendered at the crop's size."""
        metrics = super().validate(model)
        batch = {k: v.to(model.device) for k, v in self.validation_batch.items()}
        _, _, _, clean_pred = self.aligned(model, batch, validation_generator())
        images = batch["image"]
        metrics["val_psnr_onestep"] = psnr(self.autoencoder.decode(clean_pred, tuple(images.shape[-2:])), images).mean().item()
        return metrics


@torch.no_grad()
def latent_scale_of(autoencoder: ImplicitAutoencoder, dataset: Dataset, num_items: int = 256, batch_size: int = 16) -> float:
    """1 / std of the latents of the first `num_items` items (CompVis `scale_by_std`), measured once."""
    return measure_latent_scale(_latents_of(autoencoder, dataset, "image", num_items, batch_size))


@torch.no_grad()
def residual_scale_of(autoencoder: ImplicitAutoencoder, dataset: Dataset, latent_scale: float, num_items: int = 256, batch_size: int = 16) -> float:
    """1 / std of the scaled residuals (latent minus condition latent) of the first `num_items` SR items."""
    pairs = zip(*(_latents_of(autoencoder, dataset, key, num_items, batch_size) for key in ("image", "condition_image")))
    return measure_latent_scale((clean - condition) * latent_scale for clean, condition in pairs)


def _latents_of(autoencoder: ImplicitAutoencoder, dataset: Dataset, key: str, num_items: int, batch_size: int):
    """Batches of latents of the first `num_items` items' `key` image."""
    device = next(autoencoder.parameters()).device
    count = min(num_items, len(dataset))
    return (autoencoder.encode(torch.stack([dataset[i][key] for i in range(start, min(start + batch_size, count))]).to(device)) for start in range(0, count, batch_size))
