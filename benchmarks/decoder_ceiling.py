"""What the autoencoder allows an SR model at most: PSNR-Y of decode(encode(HR)) on validation photos.

An SR LDM samples a latent and the implicit decoder renders it, so its output can be no better than
the decoder's rendering of the HR photo's own latent ("oracle"): a perfect denoiser would reach it.
Beside it, the encoded bicubic-upsampled LR decoded as it is ("condition": where a residual
denoiser starts) and bicubic itself, under the evaluation protocol (liif-benchmark: Y channel,
shave = scale), on the same HR crops (a multiple of the scale and of the autoencoder's factor, with the
LR made from exactly that crop). Each decoding is also scored after the pipeline's LR consistency step
(its low frequencies replaced by the LR's), which the defaults apply: with it, the oracle is the most
an upscale with this autoencoder and the defaults can score.

    python benchmarks/decoder_ceiling.py --model src/arbiscale/weights/sr runs/cand/autoencoder \
        --data CORPUS512 --split CORPUS512/val.txt --max-images 6 --scale 4
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
from pathlib import Path

import torch

from arbiscale.data.eval_sets import load_hr, make_pair, open_eval_set
from arbiscale.data.images import resize
from arbiscale.metrics import metric_settings
from arbiscale.models import ImplicitAutoencoder, load_component
from arbiscale.pipelines.consistency import enforce_low_res_consistency
from common import publish  # benchmarks/, the script's folder


def load_autoencoder(folder: Path) -> ImplicitAutoencoder:
    """An autoencoder folder, or the autoencoder/ of a pipeline folder."""
    return load_component(ImplicitAutoencoder, folder / "autoencoder" if (folder / "model_index.json").is_file() else folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="pipeline or autoencoder folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split")
    parser.add_argument("--max-images", type=int, default=6)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = metric_settings("liif-benchmark", args.scale)
    eval_set = open_eval_set(args.data, split_file=args.split, max_images=args.max_images)
    models = {str(folder): load_autoencoder(folder) for folder in args.model}
    scores: dict[str, list[float]] = {"bicubic": []}
    if not float(args.scale).is_integer():
        parser.error(f"--scale {args.scale:g}: give an integer scale (the HR crop must be a multiple of it and of the autoencoder's factor)")
    multiple = math.lcm(int(args.scale), *(model.downsample_factor for model in models.values()))
    with torch.no_grad():
        for image in eval_set.images:
            full = load_hr(image)
            height, width = (side // multiple * multiple for side in full.shape[-2:])
            pair = make_pair(image, full[..., :height, :width], args.scale, "matlab")  # the LR of exactly the crop scored
            hr = pair.hr
            upsampled = resize(pair.lr, (height, width)).clamp(-1, 1)
            scores["bicubic"].append(settings.psnr(upsampled, hr).item())
            for name, model in models.items():
                for kind, source in (("oracle", hr), ("condition", upsampled)):
                    decoded = model.decode(model.encode(source), (height, width)).clamp(-1, 1)
                    scores.setdefault(f"{name} {kind}", []).append(settings.psnr(decoded, hr).item())
                    consistent = enforce_low_res_consistency(decoded, pair.lr)
                    scores.setdefault(f"{name} {kind} + LR consistency", []).append(settings.psnr(consistent, hr).item())
    lines = [
        f"{datetime.date.today()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {len(eval_set.images)} images of "
        f"{args.data}, scale {args.scale:g}, liif-benchmark protocol (PSNR-Y, shave {settings.crop_border}).",
        "",
        "| decoding | mean PSNR-Y (dB) | per image |",
        "|---|---|---|",
    ]
    for name, values in scores.items():
        lines.append(f"| {name} | {statistics.mean(values):.2f} | {' '.join(f'{v:.2f}' for v in values)} |")
    publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
    main()
