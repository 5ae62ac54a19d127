"""`arbiscale train ldm` (stage 2) and `arbiscale train align` (stage 3), on the shared training loop.

Both write a whole pipeline folder (autoencoder + denoiser + noise schedule) to RUN_DIR/model, ready
for `arbiscale upscale --model` or `arbiscale generate --model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import OBJECTIVE_NAMES
from ..errors import UserError
from ..presets import Preset, get_preset
from .train import (
    add_data_options,
    add_run_options,
    check_positive,
    report_saved,
    settings_from_args,
    validation_paths,
)


def add_crop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-lr-factor", type=float, default=1.5, help="SR: smallest degradation of the condition (default 1.5)")
    parser.add_argument("--max-lr-factor", type=float, default=8.0, help="SR: largest degradation of the condition (default 8)")
    parser.add_argument("--num-queries", type=int, help="target pixels per crop for the alignment loss (default: latent height x width)")
    parser.add_argument(
        "--latent-cache", type=int, default=16384,
        help="encode this many training crops once with the frozen encoder and train on that pool, kept in the run "
        "folder for --resume (default 16384, 1 GB, about 6 minutes on 2 CPU cores; 0: encode fresh crops at every step, "
        "1.7x the time per step)",
    )


def register_ldm(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "ldm",
        help="stage 2: latent denoiser for SR or generation",
        description="Stage 2: train the latent denoiser on the frozen autoencoder's latents.",
    )
    parser.add_argument("--task", required=True, choices=("sr", "gen"), help="sr: conditioned on the low-res image; gen: unconditional")
    parser.add_argument("--autoencoder", required=True, type=Path, help="the stage-1 model folder (RUN_DIR/model of `train autoencoder`)")
    add_data_options(parser)
    add_run_options(parser, default_steps=50000)
    add_crop_options(parser)
    parser.add_argument(
        "--objective", choices=OBJECTIVE_NAMES, default="v-zero-snr",
        help="what the denoiser predicts: v-zero-snr (v on a zero-terminal-SNR schedule: correct from pure noise; "
        "default) or epsilon (the paper's)",
    )
    parser.add_argument(
        "--residual", action=argparse.BooleanOptionalAction, default=True,
        help="SR: diffuse the residual over the encoded LR condition instead of the latent itself (default: on)",
    )
    parser.set_defaults(run=run_ldm)


def register_align(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "align",
        help="stage 3: align the denoiser with the implicit decoder",
        description="Stage 3: fine-tune the denoiser through the frozen implicit decoder (L_align = L_dm + L_recon, SNR-weighted).",
    )
    parser.add_argument("--model", required=True, type=Path, help="the stage-2 pipeline folder (RUN_DIR/model of `train ldm`)")
    add_data_options(parser)
    add_run_options(parser, default_steps=10000)
    add_crop_options(parser)
    parser.add_argument("--max-snr", type=float, default=5.0, help="clip of the per-sample SNR weight (default 5)")
    parser.add_argument("--denoise-weight", type=float, default=1.0, help="weight of the denoising term (default 1)")
    parser.add_argument("--recon-weight", type=float, default=1.0, help="weight of the image reconstruction term (default 1)")
    parser.set_defaults(run=run_align)


def _datasets(args: argparse.Namespace, preset: Preset, task: str, downsample_factor: int, batch_size: int):
    """(training dataset, validation batch) of HR crops, with the SR condition when task is 'sr'."""
    from ..data.crops import ArbitraryScaleCrops
    from ..data.images import list_images
    from ..training.diffusion import SuperResolutionCrops, first_items

    for name in ("min-lr-factor", "max-lr-factor", "num-queries"):
        check_positive(args, name)
    check_positive(args, "latent-cache", allow_zero=True)
    if not 1 <= args.min_lr_factor <= args.max_lr_factor:
        raise UserError(f"need 1 <= --min-lr-factor <= --max-lr-factor, got {args.min_lr_factor} and {args.max_lr_factor}")
    train_paths = list_images(args.data, args.split)
    val_paths = validation_paths(args, train_paths)

    def crops(paths, length: int, deterministic: bool):
        items = ArbitraryScaleCrops(
            paths, preset.latent_size, downsample_factor, num_queries=args.num_queries,
            length=length, seed=args.seed, deterministic=deterministic,
        )
        return SuperResolutionCrops(items, args.min_lr_factor, args.max_lr_factor) if task == "sr" else items

    training = crops(train_paths, max(len(train_paths), 100 * batch_size), deterministic=False)
    return training, first_items(crops(val_paths, 8, deterministic=True), 8)


def run_ldm(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from ..models.autoencoder import ImplicitAutoencoder
    from ..models.loading import load_component
    from ..models.unet import LatentDenoiser
    from ..sampling.schedulers import OBJECTIVES, make_scheduler
    from ..training.diffusion import LatentDiffusionTask, latent_scale_of, residual_scale_of
    from ..training.loop import train

    preset = get_preset(args.preset)
    settings = settings_from_args(args, preset, preset.ldm_lr)
    autoencoder = load_component(ImplicitAutoencoder, args.autoencoder)
    set_seed(args.seed)
    residual = args.residual and args.task == "sr"
    denoiser = LatentDenoiser.from_preset(preset, args.task, residual=residual)
    if denoiser.config.latent_channels != autoencoder.config.latent_channels:
        raise UserError(
            f"preset {preset.name!r} expects a {denoiser.config.latent_channels}-channel latent but the autoencoder in "
            f"{args.autoencoder} makes {autoencoder.config.latent_channels}: use the preset it was trained with"
        )
    dataset, validation = _datasets(args, preset, args.task, autoencoder.downsample_factor, settings.batch_size)
    denoiser.set_latent_scale(latent_scale_of(autoencoder, dataset))
    if residual:
        denoiser.set_residual_scale(residual_scale_of(autoencoder, dataset, denoiser.config.latent_scale))
    scheduler = make_scheduler("ddpm", **OBJECTIVES[args.objective])
    task = LatentDiffusionTask(denoiser, autoencoder, scheduler, dataset, validation, pool_size=args.latent_cache)
    report_saved(f"{args.task} pipeline", train(task, settings))
    return 0


def run_align(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from ..pipelines import load_pipeline
    from ..training.diffusion import AlignmentTask
    from ..training.loop import train

    preset = get_preset(args.preset)
    settings = settings_from_args(args, preset, preset.align_lr)
    for name in ("max-snr", "denoise-weight", "recon-weight"):
        check_positive(args, name, allow_zero=name != "max-snr")
    pipeline = load_pipeline(args.model)
    set_seed(args.seed)
    task_name = pipeline.denoiser.config.task
    dataset, validation = _datasets(args, preset, task_name, pipeline.autoencoder.downsample_factor, settings.batch_size)
    task = AlignmentTask(
        pipeline.denoiser.train(), pipeline.autoencoder, pipeline.scheduler, dataset, validation, pool_size=args.latent_cache,
        max_snr=args.max_snr, denoise_weight=args.denoise_weight, recon_weight=args.recon_weight,
    )
    report_saved(f"aligned {task_name} pipeline", train(task, settings))
    return 0
