"""`arbiscale train idm`: the IDM-style diffusion baseline on the same SR crops and training loop as stage 2.

Writes an IDM model folder (config.json + weights) to RUN_DIR/model, which `arbiscale upscale --model` and
`arbiscale eval sr --model` run like our pipeline (its sampler options apply; tiling does not).
"""

from __future__ import annotations

import argparse

from ...choices import OBJECTIVE_NAMES
from ...presets import get_preset
from .options import add_data_options, add_degradation_options, add_run_options, diffusion_datasets, report_saved, settings_from_args


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "idm",
        help="the IDM-style baseline: an image-space denoiser at the output resolution",
        description="Train the IDM-style baseline (SR3-style UNet at the output resolution, implicit upsampling layers, "
        "scale-adaptive conditioning) on stage 2's HR crops and degradations, at the preset's UNet widths.",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=20000)
    add_degradation_options(parser)
    parser.add_argument(
        "--objective", choices=OBJECTIVE_NAMES, default="v-zero-snr", help="what the denoiser predicts: v-zero-snr (default, as our denoiser) or epsilon (IDM's own)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from ...baselines.idm import IDMStyleSR
    from ...training.idm import IDMTask
    from ...training.loop import train

    preset = get_preset(args.preset)
    settings = settings_from_args(args, preset, preset.ldm_lr)
    set_seed(args.seed)
    model = IDMStyleSR(**preset.unet, objective=args.objective)
    dataset, validation = diffusion_datasets(args, preset, "sr", preset.downsample_factor, settings.batch_size)
    report_saved("IDM-style model", train(IDMTask(model, dataset, validation), settings))
    return 0
