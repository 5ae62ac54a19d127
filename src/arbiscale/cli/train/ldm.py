"""`arbiscale train ldm` (stage 2): the latent denoiser for SR or generation; writes a whole pipeline folder
(autoencoder + denoiser + noise schedule) to RUN_DIR/model, ready for `arbiscale upscale --model` or `generate --model`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...choices import OBJECTIVE_NAMES
from ...errors import UserError
from ...presets import get_preset
from .options import add_crop_options, add_data_options, add_run_options, crop_option_values, diffusion_datasets, report_saved, settings_from_args


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser("ldm", help="stage 2: latent denoiser for SR or generation", description="Stage 2: train the latent denoiser on the frozen autoencoder's latents.")
    parser.add_argument("--task", required=True, choices=("sr", "gen"), help="sr: conditioned on the low-res image; gen: unconditional")
    parser.add_argument("--autoencoder", required=True, type=Path, help="the stage-1 model folder (RUN_DIR/model of `train autoencoder`)")
    add_data_options(parser)
    add_run_options(parser, default_steps=50000)
    add_crop_options(parser)
    parser.add_argument(
        "--objective",
        choices=OBJECTIVE_NAMES,
        default="v-zero-snr",
        help="what the denoiser predicts: v-zero-snr (v on a zero-terminal-SNR schedule: correct from pure noise; default) or epsilon (the paper's)",
    )
    parser.add_argument(
        "--residual", action=argparse.BooleanOptionalAction, default=True, help="SR: diffuse the residual over the encoded LR condition instead of the latent itself (default: on)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from ...models.autoencoder import ImplicitAutoencoder
    from ...models.loading import load_component
    from ...models.unet import LatentDenoiser
    from ...sampling.schedulers import OBJECTIVES, make_scheduler
    from ...training.diffusion import LatentDiffusionTask, latent_scale_of, residual_scale_of
    from ...training.loop import train

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
    num_queries, pool_size = crop_option_values(args)
    dataset, validation = diffusion_datasets(args, preset, args.task, autoencoder.downsample_factor, settings.batch_size, num_queries)
    denoiser.set_latent_scale(latent_scale_of(autoencoder, dataset))
    if residual:
        denoiser.set_residual_scale(residual_scale_of(autoencoder, dataset, denoiser.config.latent_scale))
    scheduler = make_scheduler("ddpm", **OBJECTIVES[args.objective])
    task = LatentDiffusionTask(denoiser, autoencoder, scheduler, dataset, validation, pool_size=pool_size)
    report_saved(f"{args.task} pipeline", train(task, settings))
    return 0
