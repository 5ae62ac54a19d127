"""Ship trained pipelines as the bundled default model: weights stored in fp16, loaded back as fp32.

Checks that storing in fp16 loses nothing measurable: the same seed upscales a validation photo
with the fp32 and the fp16-stored pipeline, and the PSNR between the two outputs is printed
(and must exceed --min-psnr), as is the size of what ships.

    python scripts/export_default_model.py --sr RUNS/align-sr/model --gen RUNS/ldm-gen/model
    python scripts/export_default_model.py --sr RUNS/align-sr/model   # replace the upscaler only
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from arbiscale.data.images import image_to_tensor, load_image
from arbiscale.manifest import write_manifest
from arbiscale.metrics import psnr
from arbiscale.pipelines import bundled_model_dir, load_pipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coffee.png"


def export(source: Path, target: Path) -> None:
    pipeline = load_pipeline(source)
    for component in (pipeline.autoencoder, pipeline.denoiser):
        component.half()
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    pipeline.save_pretrained(staging)
    write_manifest(staging)  # checked whenever the bundled model loads
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def upscale_example(model: Path) -> torch.Tensor:
    pipeline = load_pipeline(model)
    image = image_to_tensor(load_image(EXAMPLE))[None]
    return pipeline(image, scale=2.5, num_inference_steps=20, generator=torch.Generator().manual_seed(0)).images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sr", type=Path, required=True, help="the trained upscale pipeline folder")
    parser.add_argument("--gen", type=Path, help="the trained generation pipeline folder (omit to keep the bundled one)")
    parser.add_argument("--min-psnr", type=float, default=45.0, help="fp16 vs fp32 output agreement required (dB)")
    args = parser.parse_args()
    for task, source in (("sr", args.sr), ("gen", args.gen)):
        if source is None:
            continue
        target = bundled_model_dir(task)
        target.parent.mkdir(parents=True, exist_ok=True)
        export(source, target)
        size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 2**20
        print(f"{task}: {source} -> {target} ({size:.1f} MiB)")
    agreement = psnr(upscale_example(bundled_model_dir("sr")), upscale_example(args.sr)).item()
    print(f"fp16-stored vs fp32 upscale of {EXAMPLE.name}, same seed: PSNR {agreement:.2f} dB")
    if agreement < args.min_psnr:
        raise SystemExit(f"fp16 storage changes the output measurably ({agreement:.2f} dB < {args.min_psnr} dB): ship fp32")


if __name__ == "__main__":
    main()
