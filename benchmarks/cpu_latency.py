"""Seconds per upscale on this machine with the defaults, split by stage, for two upscale pipelines.

The cases of the speed issue: a 128x128 photo at 4x, and a 32x32 input at 100x (a 3200x3200
output, where rendering dominates). Each pipeline runs each case `--repeats` times, interleaved
with the other pipeline (median and min reported); the stages are timed inside the call by wrapping
the pipeline's own steps: encoding the condition, the UNet (all sampling steps, with the sampler's
own arithmetic), rendering the latent through the implicit decoder, the LR-consistency step.

    python benchmarks/cpu_latency.py --model src/arbiscale/weights/sr runs/cand/ --threads 2 --repeats 3
    python benchmarks/cpu_latency.py --model src/arbiscale/weights/sr src/arbiscale/weights/sr --dtype fp32 bf16   # one model, two precisions
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data

import arbiscale.pipelines.upscale as upscale_module
from arbiscale.data.images import resize
from arbiscale.pipelines import UpscalePipeline
from common import cpu_name, publish  # benchmarks/, the script's folder

CASES = {"128x128 at 4x": (128, 4.0), "32x32 at 100x": (32, 100.0)}
DTYPES = {"fp32": None, "bf16": torch.bfloat16}  # None: no autocast, as the pipeline's default
STAGES = ("encode", "unet", "render", "consistency")


def photo(side: int) -> torch.Tensor:
    """A real photo (skimage's astronaut, her face) resized to side x side, in [-1, 1]."""
    face = torch.from_numpy(np.ascontiguousarray(data.astronaut()[20:276, 130:386])).permute(2, 0, 1).float() / 127.5 - 1
    return resize(face.unsqueeze(0), (side, side))


class StageClock:
    """Wraps a pipeline's steps with timers; `seconds` holds the last call's time per stage."""

    def __init__(self, pipe: UpscalePipeline) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.pipe = pipe
        self.unet_start = 0.0
        for name, stage in (("encode_condition", "encode"), ("render", "render")):
            setattr(pipe, name, self.timed(getattr(pipe, name), stage))
        pipe.denoiser.register_forward_pre_hook(lambda *_: setattr(self, "unet_start", time.perf_counter()))
        pipe.denoiser.register_forward_hook(lambda *_: self.add("unet", time.perf_counter() - self.unet_start))

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def timed(self, function, stage: str):
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)

        return wrapped

    @contextlib.contextmanager
    def call(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        original = upscale_module.enforce_low_res_consistency
        upscale_module.enforce_low_res_consistency = self.timed(original, "consistency")
        try:
            yield
        finally:
            upscale_module.enforce_low_res_consistency = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="upscale pipeline folders to compare")
    parser.add_argument("--steps", type=int, nargs="+", help="sampling steps per --model, in order (default: the pipeline's default)")
    parser.add_argument("--dtype", nargs="+", choices=list(DTYPES), help="network precision per --model, in order (default: fp32 for all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first call of each pipeline per case")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or [upscale_module.DEFAULT_SAMPLING["num_inference_steps"]] * len(args.model)
    dtypes = args.dtype or ["fp32"] * len(args.model)
    if len(steps) != len(args.model) or len(dtypes) != len(args.model):
        parser.error("give one --steps and one --dtype value per --model")
    names = [f"{folder} ({count} steps, {dtype})" for folder, count, dtype in zip(args.model, steps, dtypes)]
    pipes = {name: UpscalePipeline.from_pretrained(folder) for name, folder in zip(names, args.model)}
    step_of = dict(zip(names, steps))
    dtype_of = {name: DTYPES[dtype] for name, dtype in zip(names, dtypes)}
    clocks = {name: StageClock(pipe) for name, pipe in pipes.items()}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    runs: dict[tuple[str, str], list[tuple[float, dict[str, float]]]] = {}
    with torch.inference_mode():
        for case in args.cases:
            side, scale = CASES[case]
            image = photo(side)
            for name, pipe in pipes.items():  # warm-up: first-call allocations and kernel selection
                if not args.no_warmup:
                    pipe(image, scale=scale, num_inference_steps=step_of[name], autocast_dtype=dtype_of[name], generator=torch.Generator().manual_seed(0))
            for _ in range(args.repeats):
                for name, pipe in pipes.items():
                    with clocks[name].call():
                        start = time.perf_counter()
                        pipe(image, scale=scale, num_inference_steps=step_of[name], autocast_dtype=dtype_of[name], generator=torch.Generator().manual_seed(0))
                        total = time.perf_counter() - start
                    runs.setdefault((case, name), []).append((total, dict(clocks[name].seconds)))
                    print(f"{case} {name}: {total:.2f} s", flush=True)
    lines = [
        f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {datetime.date.today()}; the defaults "
        f"({upscale_module.DEFAULT_SAMPLING}) but the steps given per pipeline, median of {args.repeats} (min), stages of the median run.",
        "",
        "| case | pipeline | head | total s | min s | encode s | UNet s | render s | consistency s | speed-up vs first |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in args.cases:
        first = None
        for name, pipe in pipes.items():
            results = sorted(runs[case, name], key=lambda run: run[0])
            total, stages = results[len(results) // 2]
            first = first or total
            lines.append(
                f"| {case} | {name} | {pipe.autoencoder.config.head_blend} | {total:.2f} | {results[0][0]:.2f} | "
                + " | ".join(f"{stages[stage]:.2f}" for stage in STAGES)
                + f" | {first / total:.2f}x |"
            )
    publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
    main()
