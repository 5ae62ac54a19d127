"""Stage 3b: an SR pipeline's implicit decoder fine-tuned on the latents its own denoiser samples.

The decoder learns to render the encoder's latents of HR photos, but what an upscale asks it to render
is the denoiser's sample: a latent short of the HR latent's detail and carrying the sampler's noise.
Here the pipeline upscales a degraded copy of each crop of a pool once (its default sampler, no
consistency step) and the decoder, encoder and denoiser frozen, learns the L1 error between its
rendering of that sample and the HR crop at random pixels. The mirror of alignment (`train align`,
where the denoiser learns through the frozen decoder); the latents stay valid, the denoiser unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from ..data.crops import float_to_uint8, item_generator, sample_queries, uint8_to_float
from ..metrics.psnr_ssim import psnr
from ..pipelines.upscale import UpscalePipeline
from ..precision import native_bf16
from .diffusion import cached_pool, pool_item
from .loop import TrainingTask

# The sampled pool in the run folder: a resumed run reads it instead of sampling again.
SAMPLED_CROPS_FILE = "sampled_crops.safetensors"


def sample_pool(pipeline: UpscalePipeline, items: Dataset, size: int, seed: int, batch_size: int = 32, desc: str = "sampling training crops") -> dict[str, torch.Tensor]:
    """{"image": (size, 3, H, W) uint8 HR crops, "latent": the pipeline's raw sample from each crop's condition}.

    `items` are `SuperResolutionCrops` items: the condition image is already the degraded crop resized back
    to the crop's size, which is what the pipeline resizes and encodes at that output size. Item j is drawn
    from epoch j // len(items) and sampled with its own seed (seed, j), whatever the batch, in the precision
    `arbiscale upscale` uses by default (bf16 autocast where the device computes it natively).
    """
    dtype = torch.bfloat16 if native_bf16(pipeline.device) else None
    images, latents = [], []
    with torch.no_grad(), tqdm(total=size, desc=desc) as progress:
        for start in range(0, size, batch_size):
            batch = default_collate([pool_item(items, j) for j in range(start, min(start + batch_size, size))])
            generators = [item_generator(seed, j) for j in range(start, start + len(batch["image"]))]
            condition = batch["condition_image"].to(pipeline.device)
            output = pipeline(condition, size=tuple(condition.shape[-2:]), generator=generators, lr_consistency=False, autocast_dtype=dtype)
            images.append(float_to_uint8(batch["image"]))
            latents.append(output.latents.float().cpu())
            progress.update(len(batch["image"]))
    return {"image": torch.cat(images), "latent": torch.cat(latents).contiguous()}


class SampledCrops(Dataset):
    """A fixed pool of HR crops with the pipeline's sampled latent of each (`sample_pool`), plus `num_queries`
    random target pixels of the crop per item and epoch."""

    def __init__(self, fields: dict[str, torch.Tensor], num_queries: int, seed: int) -> None:
        self.fields = fields
        self.num_queries = num_queries
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.fields["latent"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = uint8_to_float(self.fields["image"][index])
        coord, cell, values = sample_queries(image, self.num_queries, item_generator(self.seed, self.epoch, index, 3))
        return {"latent": self.fields["latent"][index], "coord": coord, "cell": cell, "target": values}


class SampledLatentDecoder(nn.Module):
    """The autoencoder with its encoder frozen: renders given latents at query points (so DDP sees the decoder)."""

    def __init__(self, pipeline: UpscalePipeline) -> None:
        super().__init__()
        self.autoencoder = pipeline.autoencoder
        self.autoencoder.encoder.requires_grad_(False)
        self.autoencoder.quant_conv.requires_grad_(False)

    def forward(self, latent: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode_at(latent, coord, cell)


class DecoderAlignmentTask(TrainingTask):
    """Stage 3b as a `TrainingTask`; saves the pipeline with its fine-tuned decoder."""

    def __init__(self, pipeline: UpscalePipeline, crops: Dataset, validation_crops: Dataset, pool_size: int, num_queries: int, seed: int) -> None:
        self.pipeline = pipeline
        pipeline.set_progress_bar_config(disable=True)  # one bar for the pool, not one per batch
        self.model = SampledLatentDecoder(pipeline)
        self.frozen = (pipeline.denoiser,)
        self.crops, self.validation_crops = crops, validation_crops
        self.pool_size, self.num_queries, self.seed = pool_size, num_queries, seed

    def prepare(self, run_dir: Path, is_main_process: bool) -> None:
        """Sample the training pool (or read it back) and the fixed validation items, before the first step."""
        self.pipeline.autoencoder.to(self.pipeline.denoiser.device)  # the loop moves only the frozen denoiser before this
        fields = cached_pool(run_dir / SAMPLED_CROPS_FILE, self.pool_size, lambda: sample_pool(self.pipeline, self.crops, self.pool_size, self.seed), is_main_process)
        self.dataset = SampledCrops(fields, self.num_queries, self.seed)
        self.validation = sample_pool(self.pipeline, self.validation_crops, len(self.validation_crops), self.seed + 1, desc="sampling validation crops")

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        return (model(batch["latent"], batch["coord"], batch["cell"]).float() - batch["target"].float()).abs().mean(), {}

    def validate(self, model: nn.Module) -> dict[str, float]:
        """PSNR of the validation crops' sampled latents rendered whole, against the HR crops."""
        images = uint8_to_float(self.validation["image"]).to(self.pipeline.device)
        decoded = model.autoencoder.decode(self.validation["latent"].to(images.device), tuple(images.shape[-2:])).clamp(-1, 1)
        return {"val_psnr_sampled": psnr(decoded, images).mean().item()}

    def save(self, model: nn.Module, directory: Path) -> None:
        type(self.pipeline)(model.autoencoder, self.pipeline.denoiser, self.pipeline.scheduler).save_pretrained(directory)
