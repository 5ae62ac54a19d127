"""`arbiscale train ldm` (stage 2): the latent denoiser for SR or generation; writes a whole pipeline folder
(autoencoder + denoiser + noise schedule) to RUN_DIR/model, ready for `arbiscale upscale --model` or `generate --model`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ...choices import OBJECTIVE_NAMES
from ...errors import UserError
from ...presets import Preset, get_preset
from .options import add_crop_options, add_data_options, add_run_options, crop_option_values, diffusion_datasets, report_saved, settings_from_args

if TYPE_CHECKING:
    from ...pipelines.base import LatentImplicitPipeline


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser("ldm", help="stage 2: latent denoiser for SR or generation", description="Stage 2: train the latent denoiser on the frozen autoencoder's latents.")
    parser.add_argument("--task", required=True, choices=("sr", "gen"), help="sr: conditioned on the low-res image; gen: unconditional")
    parser.add_argument("--autoencoder", type=Path, help="the stage-1 model folder (RUN_DIR/model of `train autoencoder`); with --init-from, default: that model's")
    parser.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune the denoiser of this saved pipeline folder or bundled model (e.g. photos) instead of random weights; its objective, residual and scales are kept",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=50000)
    add_crop_options(parser)
    parser.add_argument(
        "--objective",
        choices=OBJECTIVE_NAMES,
        help="what the denoiser predicts: v-zero-snr (v on a zero-terminal-SNR schedule, correct from pure noise; default) or epsilon (the paper's); --init-from: its own",
    )
    parser.add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        help="SR: diffuse the residual over the encoded LR condition instead of the latent itself (default: on; with --init-from, that model's)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from ...models.autoencoder import ImplicitAutoencoder
    from ...models.loading import load_component
    from ...models.unet import LatentDenoiser
    from ...sampling.schedulers import OBJECTIVES, make_scheduler, training_schedule_of
    from ...training.diffusion import LatentDiffusionTask, latent_scale_of, residual_scale_of
    from ...training.loop import train

    preset = get_preset(args.preset)
    settings = settings_from_args(args, preset, preset.ldm_lr)
    if args.init_from is None and args.autoencoder is None:
        raise UserError("--autoencoder is required: the stage-1 model folder (or --init-from a saved pipeline to fine-tune its denoiser)")
    start = None if args.init_from is None else _starting_point(args, preset)
    autoencoder = load_component(ImplicitAutoencoder, args.autoencoder) if args.autoencoder else start.autoencoder
    set_seed(args.seed)
    if start is None:
        residual = args.residual is not False and args.task == "sr"
        denoiser = LatentDenoiser.from_preset(preset, args.task, residual=residual)
    else:
        denoiser = start.denoiser.train()
    if denoiser.config.latent_channels != autoencoder.config.latent_channels:
        raise UserError(
            f"the denoiser works on {denoiser.config.latent_channels}-channel latents but the autoencoder in "
            f"{args.autoencoder or args.init_from} makes {autoencoder.config.latent_channels}: use the preset (or model) it was trained with"
        )
    num_queries, pool_size = crop_option_values(args)
    dataset, validation = diffusion_datasets(args, preset, args.task, autoencoder.downsample_factor, settings.batch_size, num_queries)
    if start is None:  # a fine-tune keeps the scales its weights were trained at
        denoiser.set_latent_scale(latent_scale_of(autoencoder, dataset))
        if denoiser.config.residual:
            denoiser.set_residual_scale(residual_scale_of(autoencoder, dataset, denoiser.config.latent_scale))
        scheduler = make_scheduler("ddpm", **OBJECTIVES[args.objective or "v-zero-snr"])
    else:
        scheduler = make_scheduler("ddpm", **training_schedule_of(start.scheduler))
    task = LatentDiffusionTask(denoiser, autoencoder, scheduler, dataset, validation, pool_size=pool_size)
    report_saved(f"{args.task} pipeline", train(task, settings))
    return 0


def _starting_point(args: argparse.Namespace, preset: Preset) -> LatentImplicitPipeline:
    """The pipeline --init-from names, after checking that the options asked for agree with it."""
    from ...pipelines import load_pipeline
    from ...sampling.schedulers import objective_of

    start = load_pipeline(args.init_from)
    config = start.denoiser.config
    if config.task != args.task:
        raise UserError(f"--init-from {args.init_from} holds a {config.task!r} denoiser, not --task {args.task}: pass --task {config.task} or another model")
    objective = objective_of(start.scheduler)
    if args.objective is not None and args.objective != objective:
        raise UserError(f"--init-from {args.init_from} was trained with objective {objective}, not --objective {args.objective}: leave --objective out")
    if args.residual is not None and args.residual != config.residual:
        flag = "--residual" if config.residual else "--no-residual"
        raise UserError(f"--init-from {args.init_from} was trained with {flag}: leave --residual out to keep it")
    if json.loads(json.dumps(config.unet_kwargs)) != json.loads(json.dumps(preset.unet)):  # saved lists vs preset tuples
        raise UserError(f"--init-from {args.init_from} has another UNet than --preset {preset.name} builds: pass the preset it was trained with")
    return start
