"""The paper's decoder ablation at our scale: AE decoder + MLP (the paper's IND) vs MLP only, and
our variant with the latent also handed to the head (`latent_skip`, the `small` preset's choice).

All arms are the same preset, trained by the same stage-1 loop on the same crops, steps and seed;
the "MLP only" arm drops D_phi (`use_feature_decoder=False`) so the implicit head reads the latent
directly. Each is scored on fixed centre crops of the validation photos: encode the crop, render the
latent at s x its size and compare with the crop resized (antialiased) to that size, RGB PSNR.
Renders at s = f are full-resolution reconstructions; smaller s are arbitrary-scale renders.

    python benchmarks/decoder_ablation.py --corpus /work/corpus --steps 1500 --out BENCH_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate.utils import set_seed

from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import list_images, resize
from arbiscale.geometry import scaled_size
from arbiscale.metrics import psnr
from arbiscale.models import ImplicitAutoencoder
from arbiscale.presets import get_preset
from arbiscale.training.autoencoder import AutoencoderTask, default_validation_scale, validation_crops
from arbiscale.training.loop import TrainSettings, train

# Each arm overrides the preset's autoencoder config (the `small` preset itself has the latent skip).
ARMS = {
    "AE decoder + latent skip + MLP": {"latent_skip": True},
    "AE decoder + MLP (paper's IND)": {"latent_skip": False},
    "MLP only": {"use_feature_decoder": False, "latent_skip": False},
}


def train_arm(overrides: dict, args: argparse.Namespace, out_dir: Path) -> ImplicitAutoencoder:
    preset = get_preset(args.preset)
    set_seed(args.seed)
    model = ImplicitAutoencoder(**{**preset.autoencoder, **overrides})
    factor = model.downsample_factor
    paths = list_images(args.corpus, args.corpus / "train.txt")
    dataset = ArbitraryScaleCrops(paths, preset.latent_size, factor, num_queries=args.num_queries, length=100 * args.batch_size, seed=args.seed)
    val_paths = list_images(args.corpus, args.corpus / "val.txt")
    task = AutoencoderTask(model, dataset, validation_crops(val_paths, preset.latent_size, factor))
    settings = TrainSettings(
        out_dir=out_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=preset.autoencoder_lr,
        checkpoint_every=args.steps,
        validate_every=args.steps,
        log_every=100,
        seed=args.seed,
    )
    train(task, settings)
    return model.eval()


@torch.no_grad()
def score(model: ImplicitAutoencoder, crops: torch.Tensor, scales: list[float]) -> dict[str, float]:
    latent = model.encode(crops)
    latent_size = tuple(latent.shape[-2:])
    results = {}
    for scale in scales:
        size = scaled_size(latent_size, scale)
        results[f"{scale:g}x latent ({size[0]}x{size[1]})"] = psnr(model.decode(latent, size), resize(crops, size)).mean().item()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="built by scripts/build_corpus.py")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the two runs and results.json")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-queries", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    preset = get_preset(args.preset)
    factor = 2 ** (len(preset.autoencoder["channel_mult"]) - 1)
    val_paths = list_images(args.corpus, args.corpus / "val.txt")
    crops = validation_crops(val_paths, preset.latent_size, factor, count=len(val_paths))
    scales = sorted({1.0, default_validation_scale(factor), float(factor)})
    table = {}
    for index, (name, overrides) in enumerate(ARMS.items()):
        model = train_arm(overrides, args, args.out / f"arm{index}")
        table[name] = score(model, crops, scales)
        print(name, json.dumps(table[name]))
    (args.out / "results.json").write_text(json.dumps({"settings": vars(args) | {"corpus": str(args.corpus), "out": str(args.out)}, "psnr": table}, indent=2))
    columns = list(next(iter(table.values())))
    print("| decoder | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
