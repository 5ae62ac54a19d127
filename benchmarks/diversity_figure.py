"""Diversity figure: several samples of one input side by side, with the difference between two of them.

A centre crop of the photo is shrunk by --scale (MATLAB bicubic, as `eval sr` synthesises LR), upscaled
--samples times with seeds S, S+1, ... and the row LR | bicubic | sample 1..K | ground truth | 4 x |sample 1 -
sample 2| is written as one PNG; the mean pairwise absolute difference between samples ([0, 1] scale, as
`eval sr` reports diversity) is printed. Default sampling: the pipeline's; --paper: the paper's.

    python benchmarks/diversity_figure.py --image CORPUS512/opencv-doc__aloeL.png --scale 4 --samples 3 --paper --out diversity.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

from arbiscale.data.images import image_to_tensor, load_image, save_image, tensor_to_image
from arbiscale.metrics import diversity, resize
from arbiscale.pipelines import UpscalePipeline
from arbiscale.pipelines.upscale import PAPER_SAMPLING


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--model", help="saved UpscalePipeline folder (default: the bundled one)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crop", type=int, default=192, help="side of the ground-truth centre crop in pixels")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paper", action="store_true", help="the paper's sampling instead of the pipeline's defaults")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    photo = image_to_tensor(load_image(args.image))
    top, left = [(side - args.crop) // 2 for side in photo.shape[-2:]]
    truth = photo[:, top : top + args.crop, left : left + args.crop].unsqueeze(0)
    low = resize(truth, (args.crop // args.scale,) * 2, "matlab")
    pipe = UpscalePipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(args.seed + k) for k in range(args.samples)]
    options = PAPER_SAMPLING if args.paper else {}
    samples = pipe(low, size=(args.crop, args.crop), num_samples=args.samples, generator=generators, **options).images
    spread = diversity(list(samples.split(1))).item()
    difference = ((samples[0] - samples[1]).abs() * 4 - 1).clamp(-1, 1).unsqueeze(0)
    nearest = torch.nn.functional.interpolate(low, size=(args.crop, args.crop), mode="nearest")
    row = [nearest, resize(low, (args.crop, args.crop), "matlab"), *samples.split(1), truth, difference]
    figure = Image.new("RGB", (args.crop * len(row), args.crop), "white")
    for index, tile in enumerate(row):
        figure.paste(tensor_to_image(tile.clamp(-1, 1)), (index * args.crop, 0))
    save_image(figure, Path(args.out), overwrite=True)
    print(f"{args.out}: LR | bicubic | {args.samples} samples | ground truth | 4 x |s1 - s2|; mean pairwise |a - b| {spread:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
