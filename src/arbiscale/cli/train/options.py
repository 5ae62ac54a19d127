"""What the `train` stages share: data, run and crop options, validated settings, and the start of a run."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ...choices import AUGMENTATIONS, LR_SCHEDULES
from ...errors import UserError
from ...presets import PRESETS, Preset

if TYPE_CHECKING:
    from ...training.loop import TrainSettings


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="folder of training images (searched recursively)")
    parser.add_argument("--val-data", type=Path, help="folder of validation images (default: a few crops of the training images)")
    parser.add_argument("--split", type=Path, help="text file listing the training images to use, relative to --data, one a line")
    parser.add_argument("--val-split", type=Path, help="text file listing validation images, relative to --val-data (or --data)")
    parser.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        default="dihedral",
        help="symmetries training crops are drawn under: dihedral (all 8 flips and turns, for photos; default), flip (left-right only, for emoji, faces, text), none",
    )


def validation_paths(args: argparse.Namespace, train_paths: list[Path]) -> list[Path]:
    """The validation images: --val-data and/or --val-split, else the training images."""
    from ...data.images import list_images

    if args.val_data is None and args.val_split is None:
        return train_paths
    return list_images(args.val_data or args.data, args.val_split)


def add_run_options(parser: argparse.ArgumentParser, default_steps: int) -> None:
    """Options every stage shares: preset, run folder, optimisation, logging, checkpoints, resume."""
    parser.add_argument("--preset", required=True, help=f"model configuration: {', '.join(PRESETS)}")
    parser.add_argument("--out", required=True, type=Path, help="run folder: metrics.jsonl, checkpoints/, and the final model/")
    parser.add_argument("--steps", type=int, default=default_steps, help=f"optimizer steps in total (default {default_steps})")
    parser.add_argument("--batch-size", type=int, help="items per step and process (default: the preset's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the preset's for this stage)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant", help="constant (default), or cosine / linear decay to zero at the last of --steps")
    parser.add_argument("--warmup-steps", type=int, default=0, help="ramp the learning rate up from zero over this many first steps (default 0)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0: Adam)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this (0: off; default 1)")
    parser.add_argument("--ema", type=float, help="keep an exponential moving average of the weights with this decay, e.g. 0.999; it is what gets saved")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints (the last 2 are kept)")
    parser.add_argument("--validate-every", type=int, default=1000, help="steps between validations")
    parser.add_argument("--log-every", type=int, default=50, help="steps between lines of metrics.jsonl")
    parser.add_argument("--seed", type=int, default=0, help="fixes initial weights, crops and noise")
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "fp16", "bf16"),
        default="auto",
        help="autocast precision, fp32 master weights (default auto: bf16 where the GPU or CPU computes bf16 natively (AVX512_BF16/AMX), else no; fp16 needs a GPU)",
    )
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads per process (default: torch's, one per core). On a shared machine give fewer: two runs of 2 threads on 2 cores are several times slower than one",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest intact checkpoint")
    parser.add_argument(
        "--allow-changes", action="store_true", help="let --resume change what the run learns from (data, preset, batch size, lr, seed, stage options); refused otherwise"
    )


def check_positive(args: argparse.Namespace, name: str, allow_zero: bool = False) -> None:
    """One-line UserError naming `--name` unless its value (if given) is finite and > 0 (>= 0 with allow_zero)."""
    value = getattr(args, name.replace("-", "_"))
    if value is None:
        return
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "zero or more" if allow_zero else "greater than zero"
        raise UserError(f"--{name} must be {bound}, got {value}")


# Options that are TrainSettings fields of their own, or that change how a run goes but not what it learns.
_NOT_RUN_INPUTS = {
    "run",
    "command",
    "stage",
    "out",
    "steps",
    "batch_size",
    "lr",
    "lr_schedule",
    "warmup_steps",
    "weight_decay",
    "grad_clip",
    "ema",
    "checkpoint_every",
    "validate_every",
    "log_every",
    "seed",
    "mixed_precision",
    "workers",
    "threads",
    "resume",
    "allow_changes",
    "latent_cache",
}


def settings_from_args(args: argparse.Namespace, preset: Preset, default_lr: float) -> TrainSettings:
    """Validated `TrainSettings` from the shared options; preset values fill what was not given."""
    from ...training.loop import TrainSettings

    for name in ("steps", "batch-size", "lr", "checkpoint-every", "validate-every", "log-every"):
        check_positive(args, name)
    for name in ("weight-decay", "grad-clip", "seed", "workers", "warmup-steps"):
        check_positive(args, name, allow_zero=True)
    check_positive(args, "threads")
    if args.seed >= 2**32:  # accelerate's set_seed seeds numpy, which takes 32-bit seeds
        raise UserError(f"--seed must be below 2**32 for training, got {args.seed}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.ema is not None and not 0 < args.ema < 1:
        raise UserError(f"--ema must lie strictly between 0 and 1 (e.g. 0.999), got {args.ema}")
    return TrainSettings(
        out_dir=args.out,
        steps=args.steps,
        batch_size=args.batch_size or preset.batch_size,
        lr=args.lr or default_lr,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip or None,
        ema_decay=args.ema,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every,
        log_every=args.log_every,
        seed=args.seed,
        num_workers=args.workers,
        mixed_precision=args.mixed_precision,
        resume=args.resume,
        run_inputs={name: str(value) for name, value in sorted(vars(args).items()) if name not in _NOT_RUN_INPUTS and value is not None},
        allow_changes=args.allow_changes,
    )


def start_photo_run(args: argparse.Namespace, preset: Preset, default_lr: float) -> tuple[TrainSettings, list[Path], list[Path]]:
    """Settings and (training, validation) photos of a stage trained on photo crops with --num-queries,
    after its checks; seeds the run last, so that the model built next starts from --seed's weights."""
    from ...data.images import list_images

    settings = settings_from_args(args, preset, default_lr)
    check_positive(args, "num-queries")
    train_paths = list_images(args.data, args.split)
    val_paths = validation_paths(args, train_paths)
    from accelerate.utils import set_seed

    set_seed(args.seed)
    return settings, train_paths, val_paths


def report_saved(what: str, directory: Path) -> None:
    from accelerate.state import PartialState

    if PartialState().is_main_process:
        print(f"saved the {what} to {directory}", file=sys.stderr)


def add_reconstruction_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-queries", type=int, help="target pixels sampled per crop (default: latent height x width)")
    parser.add_argument(
        "--renders",
        type=Path,
        help="a vector set's folder (scripts/build_vector_set.py) with exact renders of the --data images at larger "
        "sides, RENDERS/<side>/<file name>: the decoder learns the true render at a random side up to --max-scale x "
        "the input, instead of a resized crop; --data is then RENDERS/<input side>",
    )
    parser.add_argument("--max-scale", type=float, default=8.0, help="with --renders: the largest target side over the input side (default 8)")


def add_degradation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-lr-factor", type=float, default=1.5, help="SR: smallest degradation of the condition (default 1.5)")
    parser.add_argument("--max-lr-factor", type=float, default=8.0, help="SR: largest degradation of the condition (default 8)")


def add_crop_options(parser: argparse.ArgumentParser) -> None:
    """The latent stages' crop options: the SR degradation, alignment's queries and the encoded pool."""
    add_degradation_options(parser)
    parser.add_argument("--num-queries", type=int, help="target pixels per crop for the alignment loss (default: latent height x width)")
    parser.add_argument(
        "--latent-cache",
        type=int,
        default=16384,
        help="encode this many training crops once with the frozen encoder and train on that pool, kept in the run "
        "folder for --resume (default 16384, 1 GB, about 6 minutes on 2 CPU cores; 0: encode fresh crops at every step, "
        "1.7x the time per step)",
    )


def crop_option_values(args: argparse.Namespace) -> tuple[int | None, int]:
    """The latent stages' `add_crop_options` values, checked: (--num-queries, --latent-cache)."""
    check_positive(args, "num-queries")
    check_positive(args, "latent-cache", allow_zero=True)
    return args.num_queries, args.latent_cache


def crop_datasets(args: argparse.Namespace, preset: Preset, task: str, downsample_factor: int, batch_size: int, num_queries: int | None = None):
    """(training dataset, validation dataset of 8 fixed items) of HR crops, with the SR condition when task is 'sr';
    `num_queries` target pixels per crop (the latent stages' --num-queries; None: the latent's height x width)."""
    from ...data.crops import ArbitraryScaleCrops
    from ...data.images import list_images
    from ...training.diffusion import SuperResolutionCrops

    for name in ("min-lr-factor", "max-lr-factor"):
        check_positive(args, name)
    if not 1 <= args.min_lr_factor <= args.max_lr_factor:
        raise UserError(f"need 1 <= --min-lr-factor <= --max-lr-factor, got {args.min_lr_factor} and {args.max_lr_factor}")
    train_paths = list_images(args.data, args.split)
    val_paths = validation_paths(args, train_paths)

    def crops(paths, length: int, deterministic: bool):
        items = ArbitraryScaleCrops(
            paths, preset.latent_size, downsample_factor, num_queries=num_queries, length=length, seed=args.seed, deterministic=deterministic, augment=args.augment
        )
        return SuperResolutionCrops(items, args.min_lr_factor, args.max_lr_factor) if task == "sr" else items

    return crops(train_paths, max(len(train_paths), 100 * batch_size), deterministic=False), crops(val_paths, 8, deterministic=True)


def diffusion_datasets(args: argparse.Namespace, preset: Preset, task: str, downsample_factor: int, batch_size: int, num_queries: int | None = None):
    """(training dataset, validation batch) of `crop_datasets`."""
    from ...training.diffusion import first_items

    training, validation = crop_datasets(args, preset, task, downsample_factor, batch_size, num_queries)
    return training, first_items(validation, 8)
