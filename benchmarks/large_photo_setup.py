"""Inputs for the large-photo upscaling benchmark (BENCHMARKS.md, "Tiled upscaling of a large photo").

Writes a randomly initialised `small` SR model (time and memory do not depend on trained weights)
and a real photo from the corpus resized to the asked size, then prints the command to time:

    python benchmarks/large_photo_setup.py --out /tmp/large --width 2000 --height 1500
    /usr/bin/time -v arbiscale upscale /tmp/large/photo.png -o /tmp/large/out.png -s 4 \
        --model /tmp/large/model --max-memory 4GB --steps 2 --sampler dpm-solver++
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from arbiscale.models import ImplicitAutoencoder
from arbiscale.models.unet import LatentDenoiser
from arbiscale.pipelines import UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling import make_scheduler

DEFAULT_PHOTO = "/work/corpus/lomiri-wallpapers-20.04__Kleiber_by_Lukas_Baubkus.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photo", default=DEFAULT_PHOTO)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    preset = get_preset("small")
    denoiser = LatentDenoiser.from_preset(preset, "sr")
    UpscalePipeline(ImplicitAutoencoder(**preset.autoencoder), denoiser, make_scheduler("ddpm")).save_pretrained(args.out / "model")
    photo = Image.open(args.photo).convert("RGB").resize((args.width, args.height), Image.Resampling.LANCZOS)
    photo.save(args.out / "photo.png")
    print(f"model: {args.out / 'model'}\nphoto: {args.out / 'photo.png'} ({args.width}x{args.height}, from {args.photo})")


if __name__ == "__main__":
    main()
