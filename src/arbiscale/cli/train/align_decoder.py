"""`arbiscale train align-decoder` (stage 3b): an SR pipeline's decoder fine-tuned on its own denoiser's samples;
writes the pipeline folder to RUN_DIR/model."""

from __future__ import annotations

import argparse

from ...errors import UserError
from ...presets import get_preset
from .options import add_data_options, add_degradation_options, add_run_options, check_positive, crop_datasets, report_saved, settings_from_args


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "align-decoder",
        help="stage 3b: fine-tune an SR pipeline's decoder on the latents its denoiser samples",
        description="Stage 3b: each crop of a pool is degraded, upscaled back by the pipeline once (its default sampler, "
        "no consistency step), and the implicit decoder learns to render that sampled latent as the HR crop (L1 at "
        "random pixels). Encoder and denoiser stay frozen, so the result is the same pipeline with a decoder fitted to "
        "what it is actually asked to render.",
    )
    parser.add_argument("--model", required=True, metavar="MODEL", help="an SR pipeline folder (RUN_DIR/model of `train ldm` or `train align`) or a bundled upscaler (e.g. photos)")
    add_data_options(parser)
    add_run_options(parser, default_steps=10000)
    add_degradation_options(parser)
    parser.add_argument("--num-queries", type=int, default=1024, help="target pixels per crop and step (default 1024)")
    parser.add_argument(
        "--pool",
        type=int,
        default=16384,
        help="crops upscaled once by the pipeline and trained on, kept in the run folder for --resume (default 16384: "
        "10 minutes on 2 CPU cores with the small preset's 64x64 crops)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ...pipelines import UpscalePipeline, load_pipeline
    from ...training.decoder_alignment import DecoderAlignmentTask
    from ...training.loop import train

    preset = get_preset(args.preset)
    settings = settings_from_args(args, preset, preset.autoencoder_lr)
    for name in ("num-queries", "pool"):
        check_positive(args, name)
    pipeline = load_pipeline(args.model)
    if not isinstance(pipeline, UpscalePipeline):
        raise UserError(f"--model {args.model} is a generation pipeline: align-decoder fine-tunes an upscaler's decoder")
    from accelerate.utils import set_seed

    set_seed(args.seed)
    crops, validation = crop_datasets(args, preset, "sr", pipeline.autoencoder.downsample_factor, settings.batch_size, num_queries=1)
    task = DecoderAlignmentTask(pipeline, crops, validation, args.pool, args.num_queries, args.seed)
    report_saved("SR pipeline with the aligned decoder", train(task, settings))
    return 0
