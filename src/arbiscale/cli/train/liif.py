"""`arbiscale train liif`: the LIIF regression baseline on the same photos and training loop as our stages.

Writes a LIIF model folder (config.json + weights) to RUN_DIR/model, which `arbiscale eval sr --model`
evaluates like a pipeline.
"""

from __future__ import annotations

import argparse

from ...presets import get_preset
from .options import add_data_options, add_run_options, report_saved, start_photo_run


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "liif",
        help="the LIIF baseline: EDSR-baseline encoder + implicit head, L1 regression",
        description="Train the LIIF baseline: LR inputs of the preset's latent size, shrunk from HR windows of 1-4x it; L1 on the windows' pixels at random query points.",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=20000)
    parser.add_argument("--num-queries", type=int, help="target pixels sampled per window (default: input height x width, as LIIF)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ...models.liif import LIIF
    from ...training.liif import DownscaledWindows, LIIFTask, validation_references
    from ...training.loop import train

    preset = get_preset(args.preset)
    settings, train_paths, val_paths = start_photo_run(args, preset, preset.liif_lr)
    liif = LIIF(**preset.liif)
    dataset = DownscaledWindows(
        train_paths, preset.latent_size, num_queries=args.num_queries, length=max(len(train_paths), 100 * settings.batch_size), seed=args.seed, augment=args.augment
    )
    task = LIIFTask(liif, dataset, validation_references(val_paths, preset.latent_size, seed=args.seed))
    report_saved("LIIF model", train(task, settings))
    return 0
