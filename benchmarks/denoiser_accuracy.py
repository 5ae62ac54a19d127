"""How accurate is an SR denoiser at each noise level: the one-step clean-latent error vs t.

For each model folder, fixed validation crops (the training stage's own crops: HR crop, condition
degraded by a factor in [--min-lr-factor, --max-lr-factor]) are encoded, noised to each timestep t with
fixed noise, and the denoiser's one-step estimate of the clean scaled latent is compared with the
truth: MSE per element, in the denoiser's scaled (unit-variance) latent space, so models with
different objectives (noise, v, residual) are compared on the same quantity. "condition" is the
error of the encoded LR condition itself, the estimate a model that learned nothing would beat.
A sampler from pure noise relies on the high-t rows; one started at strength s on those below ~s*T.

    python benchmarks/denoiser_accuracy.py --data CORPUS512 --split CORPUS512/val.txt MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse
import sys

import torch

from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import list_images
from arbiscale.evaluation.report import markdown_table
from arbiscale.pipelines import UpscalePipeline
from arbiscale.sampling.sample import predict_clean_latent
from arbiscale.training.diffusion import SuperResolutionCrops, first_items
from common import cpu_name  # benchmarks/, the script's folder

TIMESTEPS = (10, 100, 300, 500, 700, 900, 999)


@torch.no_grad()
def clean_latent_errors(pipe: UpscalePipeline, batch: dict, timesteps=TIMESTEPS) -> dict[str, float]:
    denoiser, scheduler = pipe.denoiser, pipe.scheduler
    scale = denoiser.config.latent_scale
    clean = pipe.autoencoder.encode(batch["image"]) * scale
    condition = pipe.autoencoder.encode(batch["condition_image"]) * scale
    sample = denoiser.diffusion_target(clean, condition)
    noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(0))
    errors = {"condition": (condition - clean).square().mean().item()}
    for t in timesteps:
        steps = torch.full((len(sample),), t, dtype=torch.long)
        noisy = scheduler.add_noise(sample, noise, steps)
        output = denoiser(noisy, steps, condition)
        estimate = predict_clean_latent(noisy, output, scheduler.alphas_cumprod, steps, scheduler.config.prediction_type)
        errors[f"t={t}"] = (denoiser.latent_from(estimate, condition) - clean).square().mean().item()
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split")
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--min-lr-factor", type=float, default=1.5)
    parser.add_argument("--max-lr-factor", type=float, default=8.0)
    args = parser.parse_args()
    paths = list_images(args.data, args.split)
    rows = []
    for folder in args.models:
        pipe = UpscalePipeline.from_pretrained(folder)
        crops = ArbitraryScaleCrops(paths, tuple(pipe.denoiser.config.sample_size), pipe.autoencoder.downsample_factor, length=args.crops, deterministic=True)
        batch = first_items(SuperResolutionCrops(crops, args.min_lr_factor, args.max_lr_factor), args.crops)
        errors = clean_latent_errors(pipe, batch)
        rows.append([folder, *(f"{value:.4f}" for value in errors.values())])
    header = ["model", *errors]
    print(f"{cpu_name()}, torch {torch.__version__}; {args.crops} validation crops, MSE of the clean scaled latent\n")
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
