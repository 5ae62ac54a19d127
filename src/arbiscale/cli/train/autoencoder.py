"""`arbiscale train autoencoder` (stage 1): the encoder and the implicit decoder, trained together to reconstruct at any scale."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import UserError
from ...presets import Preset, get_preset
from .options import add_data_options, add_reconstruction_options, add_run_options, check_positive, report_saved, start_photo_run

if TYPE_CHECKING:
    from ...training.loop import TrainSettings


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "autoencoder",
        help="stage 1: encoder + implicit neural decoder",
        description="Stage 1: train the encoder and the implicit decoder to reconstruct photo crops at random scales.",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=20000)
    add_reconstruction_options(parser)
    parser.add_argument(
        "--init", type=Path, help="start from this autoencoder folder's weights and architecture (fine-tuning it, encoder included) instead of the preset's random ones"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ...models.autoencoder import ImplicitAutoencoder
    from ...models.loading import load_component

    preset = get_preset(args.preset)
    settings, train_paths, val_paths = start_photo_run(args, preset, preset.autoencoder_lr)
    autoencoder = ImplicitAutoencoder(**preset.autoencoder) if args.init is None else load_component(ImplicitAutoencoder, args.init)
    return train_reconstruction(autoencoder, preset, settings, train_paths, val_paths, args, train_encoder=True)


def train_reconstruction(
    autoencoder, preset: Preset, settings: TrainSettings, train_paths: list[Path], val_paths: list[Path], args: argparse.Namespace, train_encoder: bool
) -> int:
    """Train `autoencoder` (all of it, or its decoder alone) to reconstruct crops of `train_paths` at random scales,
    or, with --renders, the exact renders of `train_paths` at random larger sides."""
    from ...data.crops import ArbitraryScaleCrops
    from ...data.renders import TrueRenders
    from ...training.autoencoder import AutoencoderTask, validation_crops
    from ...training.loop import train

    factor = autoencoder.downsample_factor
    length = max(len(train_paths), 100 * settings.batch_size)
    if args.renders is None:
        dataset = ArbitraryScaleCrops(train_paths, preset.latent_size, factor, num_queries=args.num_queries, length=length, seed=settings.seed, augment=args.augment)
    else:
        check_positive(args, "max-scale")
        if not args.renders.is_dir():
            raise UserError(f"--renders {args.renders} is not a folder: give the --out folder of scripts/build_vector_set.py")
        try:
            dataset = TrueRenders(
                train_paths,
                args.renders,
                preset.latent_size,
                factor,
                num_queries=args.num_queries,
                max_scale=args.max_scale,
                length=length,
                seed=settings.seed,
                augment=args.augment,
            )
        except ValueError as error:
            raise UserError(f"--renders: {error}") from None
    task = AutoencoderTask(autoencoder, dataset, validation_crops(val_paths, preset.latent_size, factor, seed=settings.seed), train_encoder=train_encoder)
    report_saved("autoencoder" if train_encoder else "fine-tuned autoencoder", train(task, settings))
    return 0
