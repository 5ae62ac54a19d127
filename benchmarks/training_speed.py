"""Training speed per stage: seconds per step and crops per second, before and after the speed-ups.

Each stage's real `TrainingTask` (autoencoder, SR LDM, alignment) runs its loss, backward and AdamW
step on the `small` preset under an `accelerate` Accelerator, as `arbiscale train` does, in these
settings (one row each, all in one run so load changes fall on all of them):
- fp32, 1 thread, crops encoded at every step: the recipe that trained the bundled model until now;
- fp32 / bf16 autocast (fp32 master weights), 2 threads, with and without the latent pool
  (`EncodedCrops`, the LDM and alignment stages only).
Settings run interleaved, `--repeats` times `--steps` steps after `--warmup` steps; the table gives
the median s/step. Weights are random: the work per step does not depend on their values. Crops come
from the photos in --data (any folder of images).

    python benchmarks/training_speed.py --data CORPUS512 --split CORPUS512/train.txt --output speed.md
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.data import DataLoader

from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import list_images
from arbiscale.evaluation.report import markdown_table
from arbiscale.models.autoencoder import ImplicitAutoencoder
from arbiscale.models.unet import LatentDenoiser
from arbiscale.precision import native_bf16
from arbiscale.presets import get_preset
from arbiscale.sampling.schedulers import OBJECTIVES, make_scheduler
from arbiscale.training.autoencoder import AutoencoderTask
from arbiscale.training.diffusion import AlignmentTask, EncodedCrops, LatentDiffusionTask, SuperResolutionCrops, first_items
from common import cpu_name, publish  # benchmarks/, the script's folder

# (label, precision, threads, latent pool); bf16 rows only where the CPU has native bf16 (--bf16 forces them)
SETTINGS = [
    ("before: fp32, 1 thread, encode every step", "no", 1, False),
    ("fp32, 2 threads, encode every step", "no", 2, False),
    ("fp32, 2 threads, latent pool", "no", 2, True),
    ("bf16 autocast, 2 threads, encode every step", "bf16", 2, False),
    ("bf16 autocast, 2 threads, latent pool", "bf16", 2, True),
]


def build_task(stage: str, paths, pool: bool, batch: int, queries: int):
    preset = get_preset("small")
    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**preset.autoencoder)
    crops = ArbitraryScaleCrops(paths, preset.latent_size, autoencoder.downsample_factor, num_queries=queries, length=4 * batch)
    if stage == "autoencoder":
        return AutoencoderTask(autoencoder, crops, first_items(crops, 2)["image"])
    items = SuperResolutionCrops(crops)
    denoiser = LatentDenoiser.from_preset(preset, "sr", residual=True)
    task_class = LatentDiffusionTask if stage == "ldm-sr" else AlignmentTask
    dataset = EncodedCrops(items, autoencoder.eval().requires_grad_(False), 4 * batch) if pool else items
    return task_class(denoiser, autoencoder, make_scheduler("ddpm", **OBJECTIVES["v-zero-snr"]), dataset, first_items(items, 2))


def time_steps(task, precision: str, threads: int, batch: int, steps: int, warmup: int) -> float:
    """Mean s/step of `steps` steps after `warmup`, data loading included."""
    torch.set_num_threads(threads)
    AcceleratorState._reset_state(reset_partial_state=True)  # a new precision needs a new accelerator state
    accelerator = Accelerator(mixed_precision=precision)
    for module in task.frozen:
        module.eval().requires_grad_(False)
    model = task.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loader = DataLoader(task.dataset, batch_size=batch, shuffle=True, drop_last=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    def batches():
        while True:
            yield from loader

    stream = batches()
    started = None
    for index in range(warmup + steps):
        if index == warmup:
            started = time.perf_counter()
        batch_items = next(stream)
        with accelerator.autocast():
            loss, _ = task.loss(model, batch_items)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - started) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split")
    parser.add_argument("--stages", nargs="+", default=["autoencoder", "ldm-sr", "align-sr"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast on a CPU without native bf16")
    parser.add_argument("--output")
    args = parser.parse_args()
    with_bf16 = args.bf16 or native_bf16("cpu")
    paths = list_images(args.data, args.split)[:16]
    # stage: (batch, queries per crop), as scripts/train_default_model.sh runs them
    shapes = {"autoencoder": (8, 1024), "ldm-sr": (16, 256), "align-sr": (8, 1024)}
    rows = []
    for stage in args.stages:
        batch, queries = shapes[stage]
        tasks = {pool: build_task(stage, paths, pool, batch, queries) for pool in (False, True) if stage != "autoencoder" or not pool}
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for label, precision, threads, pool in SETTINGS:
                if pool not in tasks or (precision == "bf16" and not with_bf16):
                    continue
                times.setdefault(label, []).append(time_steps(tasks[pool], precision, threads, batch, args.steps, args.warmup))
        before = statistics.median(times[SETTINGS[0][0]])
        for label, values in times.items():
            median = statistics.median(values)
            rows.append([stage, label, f"{median:.3f}", f"{batch / median:.1f}", f"{before / median:.2f}x"])
            print(rows[-1], file=sys.stderr)
    table = markdown_table(["stage", "setting", "s/step", "crops/s", "speed-up"], rows)
    bf16_note = "native bf16" if native_bf16("cpu") else "no native bf16 (AVX512_BF16/AMX)"
    header = f"{cpu_name()}, {bf16_note}, torch {torch.__version__}, {datetime.date.today()}; median of {args.repeats} x {args.steps} steps\n\n"
    publish(header + table + "\n", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
