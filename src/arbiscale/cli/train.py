"""`arbiscale train STAGE ...`: one sub-command per training stage, all on the shared training loop.

Adding a stage (e.g. `train ldm`): write `cli/train_<stage>.py` with `register(stages)` that calls
`stages.add_parser(...)`, adds `add_run_options(parser, ...)` (and `add_data_options` if it reads
photos), builds its settings with `settings_from_args`, and sets `run`; then add one line to
`STAGES` below.

Several processes (DDP): `accelerate launch --multi_gpu --num_processes N -m arbiscale.cli.main train ...`;
on a machine without GPUs, prefix `ACCELERATE_USE_CPU=1` (gloo). `accelerate launch --cpu` starts only
one process unless MPI is set up.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import HEAD_BLENDS
from ..errors import UserError
from ..presets import PRESETS, Preset, get_preset

if TYPE_CHECKING:
    from ..training.loop import TrainSettings

# (module, function) registering one `train` sub-command; imported lazily so stages may import this module.
STAGES: list[tuple[str, str]] = [
    ("arbiscale.cli.train", "register_autoencoder"),
    ("arbiscale.cli.train", "register_decoder"),
    ("arbiscale.cli.train_diffusion", "register_ldm"),
    ("arbiscale.cli.train_diffusion", "register_align"),
    ("arbiscale.cli.train_liif", "register_liif"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one stage of the model", description="Train one stage of the model; each stage is a sub-command.")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for module, function in STAGES:
        getattr(importlib.import_module(module), function)(stages)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="folder of training images (searched recursively)")
    parser.add_argument("--val-data", type=Path, help="folder of validation images (default: a few crops of the training images)")
    parser.add_argument("--split", type=Path, help="text file listing the training images to use, relative to --data, one a line")
    parser.add_argument("--val-split", type=Path, help="text file listing validation images, relative to --val-data (or --data)")


def validation_paths(args: argparse.Namespace, train_paths: list[Path]) -> list[Path]:
    """The validation images: --val-data and/or --val-split, else the training images."""
    from ..data.images import list_images

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
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0: Adam)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this (0: off; default 1)")
    parser.add_argument("--ema", type=float, help="keep an exponential moving average of the weights with this decay, e.g. 0.999; it is what gets saved")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints (the last 2 are kept)")
    parser.add_argument("--validate-every", type=int, default=1000, help="steps between validations")
    parser.add_argument("--log-every", type=int, default=50, help="steps between lines of metrics.jsonl")
    parser.add_argument("--seed", type=int, default=0, help="fixes initial weights, crops and noise")
    parser.add_argument(
        "--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
        help="autocast precision, fp32 master weights (default auto: bf16 where the GPU or CPU computes bf16 natively "
        "(AVX512_BF16/AMX), else no; fp16 needs a GPU)",
    )
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument(
        "--threads", type=int,
        help="torch CPU threads per process (default: torch's, one per core). On a shared machine give fewer: "
        "two runs of 2 threads on 2 cores are several times slower than one",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest intact checkpoint")
    parser.add_argument(
        "--allow-changes", action="store_true",
        help="let --resume change what the run learns from (data, preset, batch size, lr, seed, stage options); refused otherwise",
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
    "run", "command", "stage", "out", "steps", "batch_size", "lr", "weight_decay", "grad_clip", "ema", "checkpoint_every",
    "validate_every", "log_every", "seed", "mixed_precision", "workers", "threads", "resume", "allow_changes", "latent_cache",
}


def settings_from_args(args: argparse.Namespace, preset: Preset, default_lr: float) -> TrainSettings:
    """Validated `TrainSettings` from the shared options; preset values fill what was not given."""
    from ..training.loop import TrainSettings

    for name in ("steps", "batch-size", "lr", "checkpoint-every", "validate-every", "log-every"):
        check_positive(args, name)
    for name in ("weight-decay", "grad-clip", "seed", "workers"):
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
    from ..data.images import list_images

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


def register_autoencoder(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "autoencoder",
        help="stage 1: encoder + implicit neural decoder",
        description="Stage 1: train the encoder and the implicit decoder to reconstruct photo crops at random scales.",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=20000)
    parser.add_argument("--num-queries", type=int, help="target pixels sampled per crop (default: latent height x width)")
    parser.set_defaults(run=run_autoencoder)


def register_decoder(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "decoder",
        help="stage 1b: fine-tune the implicit decoder of a trained autoencoder, encoder frozen",
        description="Fine-tune the implicit decoder (feature decoder + head) of a trained autoencoder with its encoder "
        "frozen: the latents stay the same, so denoisers trained on them keep working with the new decoder "
        "(swap it into their pipeline folder's autoencoder/). --head-blend converts the head first.",
    )
    parser.add_argument("--autoencoder", required=True, type=Path, help="the autoencoder folder to start from (e.g. MODEL/autoencoder)")
    parser.add_argument(
        "--head-blend", choices=HEAD_BLENDS,
        help="outputs: each ensemble neighbour runs the whole MLP (LIIF, the paper); first-layer: neighbours blended "
        "after the first layer, about 4x less work per output pixel (default: keep the autoencoder's)",
    )
    add_data_options(parser)
    add_run_options(parser, default_steps=10000)
    parser.add_argument("--num-queries", type=int, help="target pixels sampled per crop (default: latent height x width)")
    parser.set_defaults(run=run_decoder)


def run_autoencoder(args: argparse.Namespace) -> int:
    from ..models.autoencoder import ImplicitAutoencoder

    preset = get_preset(args.preset)
    settings, train_paths, val_paths = start_photo_run(args, preset, preset.autoencoder_lr)
    return _train_reconstruction(ImplicitAutoencoder(**preset.autoencoder), preset, settings, train_paths, val_paths, args.num_queries, train_encoder=True)


def run_decoder(args: argparse.Namespace) -> int:
    from ..models.autoencoder import ImplicitAutoencoder, with_head_blend
    from ..models.loading import load_component

    preset = get_preset(args.preset)
    settings, train_paths, val_paths = start_photo_run(args, preset, preset.autoencoder_lr)
    autoencoder = load_component(ImplicitAutoencoder, args.autoencoder)
    if args.head_blend is not None and args.head_blend != autoencoder.config.head_blend:
        try:
            autoencoder = with_head_blend(autoencoder, args.head_blend)
        except ValueError as error:
            raise UserError(f"{args.autoencoder}: {error}; start from an autoencoder with the default head") from None
    return _train_reconstruction(autoencoder, preset, settings, train_paths, val_paths, args.num_queries, train_encoder=False)


def _train_reconstruction(
    autoencoder, preset: Preset, settings: TrainSettings, train_paths: list[Path], val_paths: list[Path], num_queries: int | None, train_encoder: bool,
) -> int:
    """Train `autoencoder` (all of it, or its decoder alone) to reconstruct crops of `train_paths` at random scales."""
    from ..data.crops import ArbitraryScaleCrops
    from ..training.autoencoder import AutoencoderTask, validation_crops
    from ..training.loop import train

    factor = autoencoder.downsample_factor
    dataset = ArbitraryScaleCrops(
        train_paths, preset.latent_size, factor, num_queries=num_queries,
        length=max(len(train_paths), 100 * settings.batch_size), seed=settings.seed,
    )
    task = AutoencoderTask(autoencoder, dataset, validation_crops(val_paths, preset.latent_size, factor, seed=settings.seed), train_encoder=train_encoder)
    report_saved("autoencoder" if train_encoder else "fine-tuned autoencoder", train(task, settings))
    return 0
