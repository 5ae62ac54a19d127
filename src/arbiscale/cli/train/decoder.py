"""`arbiscale train decoder` (stage 1b): the implicit decoder of a trained autoencoder fine-tuned, its encoder frozen."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...choices import HEAD_BLENDS
from ...errors import UserError
from ...presets import get_preset
from .autoencoder import train_reconstruction
from .options import add_data_options, add_reconstruction_options, add_run_options, start_photo_run


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "decoder",
        help="stage 1b: fine-tune the implicit decoder of a trained autoencoder, encoder frozen",
        description="Fine-tune the implicit decoder (feature decoder + head) of a trained autoencoder with its encoder "
        "frozen: the latents stay the same, so denoisers trained on them keep working with the new decoder "
        "(swap it into their pipeline folder's autoencoder/). --head-blend converts the head first.",
    )
    parser.add_argument("--autoencoder", required=True, type=Path, help="the autoencoder folder to start from (e.g. MODEL/autoencoder)")
    parser.add_argument(
        "--head-blend",
        choices=HEAD_BLENDS,
        help="outputs: each ensemble neighbour runs the whole MLP (LIIF, the paper); first-layer: neighbours blended "
        "after the first layer, about 4x less work per output pixel (default: keep the autoencoder's)",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=10000)
    add_reconstruction_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ...models.autoencoder import ImplicitAutoencoder, with_head_blend
    from ...models.loading import load_component

    preset = get_preset(args.preset)
    settings, train_paths, val_paths = start_photo_run(args, preset, preset.autoencoder_lr)
    autoencoder = load_component(ImplicitAutoencoder, args.autoencoder)
    if args.head_blend is not None and args.head_blend != autoencoder.config.head_blend:
        try:
            autoencoder = with_head_blend(autoencoder, args.head_blend)
        except ValueError as error:
            raise UserError(f"{args.autoencoder}: {error}; start from an autoencoder with the default head") from None
    return train_reconstruction(autoencoder, preset, settings, train_paths, val_paths, args, train_encoder=False)
