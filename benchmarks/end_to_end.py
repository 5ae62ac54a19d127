"""End to end SR: seconds per image and peak memory vs scale, ours vs the IDM-style baseline.

Same LR input (a 16x16 crop of skimage's astronaut photo), same sampler and number of steps, same
UNet width (both sized by one preset); weights are randomly initialised, which does not change the
work done. Each configuration runs in its own subprocess, so its peak memory is its own: on the
CPU, peak resident memory (getrusage maxrss) minus the resident memory just before the run; on
CUDA, torch.cuda.max_memory_allocated. Peak memory is given with and without the returned
(B, 3, H, W) float32 output, which is the result itself and cannot be avoided: ours allocates it
when rendering starts, so without it the peak is the larger of the peak before rendering and the
peak while rendering less the output; the baseline holds an output-sized image at every step, so
its peak less one output. Baseline configurations above `--baseline-max-scale`, or whose memory or
time, projected from the largest scale it ran at (linear in output pixels, a lower bound: its
attention is quadratic), exceed the budgets are not run and marked so. `--latent-size 32` fixes our
working latent at every scale (the paper's protocol: the UNet's cost stays constant and only
decoding grows); by default it follows the output up to the pipeline's cap.

    python benchmarks/end_to_end.py --scales 8 12 30 100 200 --steps 3 --output /tmp/e2e.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from skimage import data

from arbiscale.baselines.idm import IDMStyleSR
from arbiscale.data.images import resize
from arbiscale.geometry import parse_size, scaled_size
from arbiscale.models.autoencoder import ImplicitAutoencoder
from arbiscale.models.unet import LatentDenoiser
from arbiscale.pipelines import UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling.schedulers import make_scheduler
from common import publish  # benchmarks/, the script's folder

METHODS = ("ours", "idm")


def lr_input(side: int) -> torch.Tensor:
    """The astronaut's face, resized (antialiased) to side x side: a real photo as the LR input."""
    face = torch.from_numpy(np.ascontiguousarray(data.astronaut()[20:220, 140:340])).permute(2, 0, 1).float() / 127.5 - 1
    return resize(face.unsqueeze(0), (side, side))


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="utf-8") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def peak_bytes(device: torch.device) -> int:
    """The peak so far: resident memory on the CPU, allocated memory on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_denoiser_calls(denoiser: torch.nn.Module, device: torch.device) -> list[float]:
    """Durations of every denoiser call from now on: per-step cost, apart from the once-per-image work."""
    durations: list[float] = []

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def started(*_) -> None:
        sync()
        durations.append(-time.perf_counter())

    def finished(*_) -> None:
        sync()
        durations[-1] += time.perf_counter()

    denoiser.register_forward_pre_hook(started)
    denoiser.register_forward_hook(finished)
    return durations


def run_one(args: argparse.Namespace) -> dict:
    """One configuration, in this (fresh) process: build the model, time one upscale, report memory."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    preset = get_preset(args.preset)
    lr = lr_input(args.lr_size).to(device)
    generator = torch.Generator(device).manual_seed(0)
    render_starts: list[int] = []  # the peak so far when our render began (the output is allocated there)
    if args.method == "ours":
        autoencoder = ImplicitAutoencoder(**preset.autoencoder)
        pipeline = UpscalePipeline(autoencoder, LatentDenoiser.from_preset(preset, "sr"), make_scheduler("ddpm")).to(device)
        pipeline.set_progress_bar_config(disable=True)
        denoiser = pipeline.denoiser
        render = pipeline.render

        def marked_render(*render_args, **render_kwargs) -> torch.Tensor:
            render_starts.append(peak_bytes(device))
            return render(*render_args, **render_kwargs)

        pipeline.render = marked_render

        def upscale(scale: float, steps: int, latent_size: tuple[int, int] | None) -> torch.Tensor:
            return pipeline(
                lr,
                scale=scale,
                num_inference_steps=steps,
                sampler=args.sampler,
                generator=generator,
                latent_size=latent_size,
                decode_chunk=args.decode_chunk,
                autocast_dtype=torch.bfloat16 if args.bf16 else None,
            ).images
    else:
        model = denoiser = IDMStyleSR.from_preset(preset).to(device).eval()

        def upscale(scale: float, steps: int, latent_size: tuple[int, int] | None) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                size = scaled_size(tuple(lr.shape[-2:]), scale)
                return model.upscale(lr, size, num_inference_steps=steps, sampler=args.sampler, generator=generator)

    with torch.inference_mode():
        upscale(2.0, 1, None)  # warm-up: thread pools, kernel selection and first-touch allocations are not the model's cost
    step_seconds = time_denoiser_calls(denoiser, device)
    render_starts.clear()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = 0 if device.type == "cuda" else rss_bytes()
    start = time.perf_counter()
    with torch.inference_mode():
        image = upscale(args.scale, args.steps, args.latent_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = peak_bytes(device)
    size = scaled_size(tuple(lr.shape[-2:]), args.scale)
    assert tuple(image.shape[-2:]) == size and torch.isfinite(image).all()
    output = image.numel() * image.element_size()
    without_output = max(render_starts[0], peak - output) if render_starts else peak - output
    return {
        "seconds": seconds,
        "step_seconds": sum(step_seconds) / args.steps,
        "peak_bytes": peak - before,
        "peak_without_output_bytes": max(without_output - before, 0),
        "output_bytes": output,
        "size": list(size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--scales", type=float, nargs="+", default=[8, 12, 30, 100, 200])
    parser.add_argument("--lr-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--decode-chunk", type=int, default=65536)
    parser.add_argument("--latent-size", type=parse_size, help="our working latent HxW at every scale (e.g. 32); default: the pipeline's")
    parser.add_argument("--baseline-max-scale", type=float, help="run the baseline only up to this scale, project it beyond")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for both (use on a GPU)")
    parser.add_argument("--project-steps", type=int, default=200, help="also project both to this many steps (the paper's 200)")
    parser.add_argument("--memory-budget-gb", type=float, default=8.0, help="skip baseline runs projected above this")
    parser.add_argument("--time-budget-s", type=float, default=600.0, help="skip baseline runs projected above this")
    parser.add_argument("--output", help="also write the table to this markdown file")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        args.method = args.worker
        print(json.dumps(run_one(args)))
        return

    shared = (
        [
            f"--preset={args.preset}",
            f"--lr-size={args.lr_size}",
            f"--steps={args.steps}",
            f"--sampler={args.sampler}",
            f"--decode-chunk={args.decode_chunk}",
            f"--device={args.device}",
        ]
        + ([f"--threads={args.threads}"] if args.threads else [])
        + (["--bf16"] if args.bf16 else [])
    )
    if args.latent_size:
        shared.append(f"--latent-size={args.latent_size[0]}x{args.latent_size[1]}")
    projected_keys = ("seconds", "step_seconds", "peak_bytes", "peak_without_output_bytes")
    results: dict[tuple[str, float], dict] = {}
    last_idm: tuple[int, dict] | None = None
    for scale in args.scales:
        pixels = scaled_size((args.lr_size, args.lr_size), scale)
        pixels = pixels[0] * pixels[1]
        for method in METHODS:
            if method == "idm" and last_idm is not None:
                ratio = pixels / last_idm[0]
                projected = {key: last_idm[1][key] * ratio for key in projected_keys}
                over_scale = args.baseline_max_scale is not None and scale > args.baseline_max_scale
                if over_scale or projected["peak_bytes"] > args.memory_budget_gb * 2**30 or projected["seconds"] > args.time_budget_s:
                    results[method, scale] = {"skipped": projected, "reason": "not run" if over_scale else "exceeds budget"}
                    print(f"{method} x{scale:g}: skipped, projected {projected['seconds']:.0f} s, {projected['peak_bytes'] / 2**30:.1f} GiB", flush=True)
                    continue
            command = [sys.executable, __file__, f"--worker={method}", f"--scale={scale}"] + shared
            finished = subprocess.run(command, capture_output=True, text=True, check=False)
            if finished.returncode != 0:
                results[method, scale] = {"failed": finished.stderr.strip().splitlines()[-1]}
            else:
                results[method, scale] = json.loads(finished.stdout.strip().splitlines()[-1])
                if method == "idm":
                    last_idm = (pixels, results[method, scale])
            print(f"{method} x{scale:g}: {results[method, scale]}", flush=True)

    def memory(result: dict) -> str:
        """Peak MiB with the output, and (in brackets) without it."""
        return f"{result['peak_bytes'] / 2**20:.0f} ({result['peak_without_output_bytes'] / 2**20:.0f})"

    def measured(result: dict, paper_steps: int) -> tuple[str, str, str, str]:
        if "failed" in result:
            return f"failed: {result['failed']}", "", "", ""
        if "skipped" in result:
            guess, reason = result["skipped"], result["reason"]
            return (
                f"{reason} (projected >= {guess['seconds']:.0f})",
                f">= {guess['step_seconds']:.1f}",
                f">= {guess['seconds'] + (paper_steps - args.steps) * guess['step_seconds']:.0f}",
                f"{reason} (projected >= {memory(guess)})",
            )
        at_paper = result["seconds"] + (paper_steps - args.steps) * result["step_seconds"]
        return f"{result['seconds']:.2f}", f"{result['step_seconds']:.3f}", f"{at_paper:.1f}", memory(result)

    def ratio(idm: dict, ours: dict, paper_steps: int) -> tuple[str, str, str]:
        if "seconds" not in ours or "failed" in idm:
            return "", "", ""
        if "skipped" in idm:
            guess = idm["skipped"]
            at_paper = guess["seconds"] + (paper_steps - args.steps) * guess["step_seconds"]
            prefix = ">= "
        else:
            guess, at_paper, prefix = idm, idm["seconds"] + (paper_steps - args.steps) * idm["step_seconds"], ""
        ours_at_paper = ours["seconds"] + (paper_steps - args.steps) * ours["step_seconds"]
        memory = f"{guess['peak_bytes'] / max(ours['peak_bytes'], 1):.1f}x"
        return f"{prefix}{guess['seconds'] / ours['seconds']:.1f}x", f"{prefix}{at_paper / ours_at_paper:.1f}x", f"{prefix}{memory}"

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.device} ({torch.get_num_threads()} threads)"
    steps, paper = args.steps, args.project_steps
    latent = f"{args.latent_size[0]}x{args.latent_size[1]} at every scale" if args.latent_size else "the pipeline's default"
    lines = [
        (
            f"{args.preset} preset widths for both, LR {args.lr_size}x{args.lr_size}, {steps} {args.sampler} steps, "
            f"{'bf16' if args.bf16 else 'fp32'}, random weights, our working latent {latent}, {device}, torch {torch.__version__}, "
            f"{datetime.date.today()}."
        ),
        f"s/step: time inside the denoiser per step (measured); at {paper} steps: measured s/image + ({paper} - {steps}) x s/step.",
        "peak MiB: with the returned float32 output (in brackets: without it); memory ratio: with it.",
        "",
        (
            f"| scale | output | ours s/image | ours s/step | ours s at {paper} steps | ours peak MiB | IDM-style s/image | IDM-style s/step | "
            f"IDM-style s at {paper} steps | IDM-style peak MiB | speed ratio ({steps} steps) | speed ratio ({paper} steps) | memory ratio |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scale in args.scales:
        ours, idm = results["ours", scale], results["idm", scale]
        size = scaled_size((args.lr_size, args.lr_size), scale)
        cells = [*measured(ours, paper), *measured(idm, paper), *ratio(idm, ours, paper)]
        lines.append(f"| {scale:g}x | {size[0]}x{size[1]} | " + " | ".join(cells) + " |")
    publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
    main()
