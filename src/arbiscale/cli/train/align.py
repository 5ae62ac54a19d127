"""`arbiscale train align` (stage 3): the denoiser fine-tuned through the frozen implicit decoder; writes the
aligned pipeline folder to RUN_DIR/model."""

from __future__ import annotations

import argparse

from ...choices import ALIGN_WEIGHTINGS
from ...presets import get_preset
from .options import add_crop_options, add_data_options, add_run_options, check_positive, crop_option_values, diffusion_datasets, report_saved, settings_from_args


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "align",
        help="stage 3: align the denoiser with the implicit decoder",
        description="Stage 3: fine-tune the denoiser through the frozen implicit decoder (L_align = L_dm + L_recon, SNR-weighted).",
    )
    parser.add_argument("--model", required=True, metavar="MODEL", help="the stage-2 pipeline folder (RUN_DIR/model of `train ldm`) or a bundled model (e.g. photos)")
    add_data_options(parser)
    add_run_options(parser, default_steps=10000)
    add_crop_options(parser)
    parser.add_argument(
        "--weighting",
        choices=ALIGN_WEIGHTINGS,
        default="clipped-snr",
        help="per-sample weight of the loss: clipped-snr, min(SNR, --max-snr) (the paper's; default), or uniform over noise levels",
    )
    parser.add_argument("--max-snr", type=float, default=5.0, help="clip of the per-sample SNR weight of --weighting clipped-snr (default 5)")
    parser.add_argument("--denoise-weight", type=float, default=1.0, help="weight of the denoising term (default 1)")
    parser.add_argument("--recon-weight", type=float, default=1.0, help="weight of the image reconstruction term (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from ...pipelines import load_pipeline
    from ...training.diffusion import AlignmentTask
    from ...training.loop import train

    preset = get_preset(args.preset)
    settings = settings_from_args(args, preset, preset.align_lr)
    for name in ("max-snr", "denoise-weight", "recon-weight"):
        check_positive(args, name, allow_zero=name != "max-snr")
    pipeline = load_pipeline(args.model)
    set_seed(args.seed)
    task_name = pipeline.denoiser.config.task
    num_queries, pool_size = crop_option_values(args)
    dataset, validation = diffusion_datasets(args, preset, task_name, pipeline.autoencoder.downsample_factor, settings.batch_size, num_queries)
    task = AlignmentTask(
        pipeline.denoiser.train(),
        pipeline.autoencoder,
        pipeline.scheduler,
        dataset,
        validation,
        pool_size=pool_size,
        weighting=args.weighting,
        max_snr=args.max_snr,
        denoise_weight=args.denoise_weight,
        recon_weight=args.recon_weight,
    )
    report_saved(f"aligned {task_name} pipeline", train(task, settings))
    return 0
