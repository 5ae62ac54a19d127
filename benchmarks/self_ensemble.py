"""Self-ensemble probe: does averaging an upscale over the 8 symmetries of the input raise PSNR-Y?

EDSR's "+" trick: each flip / transpose of the LR image is upscaled with the pipeline's defaults (one seed per
photo), mapped back and averaged in pixel space (a latent is not flipped with its image, so the average cannot be
taken inside the latent space). Prints, per photo and as means: one upscale, the mean PSNR of the 8, the average of
the 4 flips and of all 8; LR by MATLAB bicubic, protocol liif-benchmark, as `eval sr` scores.

    python benchmarks/self_ensemble.py --data CORPUS512 --split CORPUS512/val.txt --max-images 6 --scale 4 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from arbiscale.data.crops import symmetry
from arbiscale.data.eval_sets import load_hr, make_pair, open_eval_set
from arbiscale.metrics.color import quantize_8bit
from arbiscale.metrics.protocols import metric_settings
from arbiscale.pipelines import UpscalePipeline


def undo_symmetry(image: torch.Tensor, choice: int) -> torch.Tensor:
    """The inverse of `symmetry(., choice)`: its steps undone in reverse order."""
    if choice & 4:
        image = image.transpose(-2, -1)
    if choice & 2:
        image = image.flip(-2)
    if choice & 1:
        image = image.flip(-1)
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--model", help="saved UpscalePipeline folder (default: the bundled one)")
    parser.add_argument("--max-images", type=int, default=6)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = UpscalePipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    eval_set = open_eval_set(args.data, split_file=args.split, max_images=args.max_images)
    settings = metric_settings("liif-benchmark", args.scale, "matlab")
    rows = []
    for index, image in enumerate(eval_set.images):
        pair = make_pair(image, load_hr(image), args.scale, "matlab")
        height, width = pair.hr.shape[-2:]
        started = time.perf_counter()
        outputs = []
        for k in range(8):
            size = (width, height) if k & 4 else (height, width)
            upscaled = pipe(symmetry(pair.lr, k), size=size, generator=torch.Generator().manual_seed(index), autocast_dtype=torch.bfloat16).images
            outputs.append(undo_symmetry(upscaled, k))

        def score(output: torch.Tensor) -> float:
            return settings.psnr(quantize_8bit(output), pair.hr).item()

        row = (score(outputs[0]), sum(map(score, outputs)) / 8, score(torch.stack(outputs[:4]).mean(0)), score(torch.stack(outputs).mean(0)))
        rows.append(row)
        print(f"{image.name}: one {row[0]:.3f}  mean of the 8 {row[1]:.3f}  flips (4) {row[2]:.3f}  all 8 {row[3]:.3f}  ({time.perf_counter() - started:.0f} s)", flush=True)
    means = [sum(column) / len(rows) for column in zip(*rows)]
    print(f"mean x{args.scale:g}: one {means[0]:.3f}  mean of the 8 {means[1]:.3f}  flips (4) {means[2]:.3f}  all 8 {means[3]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
