"""Ship trained pipelines as bundled models (by name: `arbiscale.choices.BUNDLED_UPSCALERS` and
`BUNDLED_GENERATORS`): weights stored in fp16, loaded back as fp32.

Checks that storing in fp16 loses nothing measurable: the same seed upscales the example photo (or
generates an image) with the fp32 and the fp16-stored pipeline, and the PSNR between the two outputs
is printed (and must exceed --min-psnr), as is the size of what ships.

    python scripts/export_default_model.py photos=RUNS/align-sr/model emoji=RUNS/vec-gen/model
    python scripts/export_default_model.py photos=RUNS/align-sr/model   # replace the upscaler only
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from arbiscale.choices import BUNDLED_GENERATORS, BUNDLED_UPSCALERS
from arbiscale.data.images import image_to_tensor, load_image
from arbiscale.manifest import write_manifest
from arbiscale.metrics import psnr
from arbiscale.pipelines import GenerationPipeline, bundled_model_dir, load_pipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coffee.png"


# Files beside the components that travel with the weights: the training data's attribution and licences.
DATA_NOTICES = ("NOTICE.md", "licences")


def export(source: Path, target: Path) -> None:
    pipeline = load_pipeline(source)
    for component in (pipeline.autoencoder, pipeline.denoiser):
        component.half()
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    pipeline.save_pretrained(staging)
    for name in DATA_NOTICES:
        if (source / name).is_dir():
            shutil.copytree(source / name, staging / name)
        elif (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    write_manifest(staging)  # checked whenever the bundled model loads
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def example_output(model: Path) -> torch.Tensor:
    """The example photo upscaled 2.5x, or one image generated at 256x256, with seed 0."""
    pipeline = load_pipeline(model)
    generator = torch.Generator().manual_seed(0)
    if isinstance(pipeline, GenerationPipeline):
        return pipeline([(256, 256)], num_images=1, generator=[generator]).images[0]
    image = image_to_tensor(load_image(EXAMPLE))[None]
    return pipeline(image, scale=2.5, num_inference_steps=20, generator=generator).images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = {**BUNDLED_UPSCALERS, **BUNDLED_GENERATORS}
    parser.add_argument("models", nargs="+", metavar="NAME=FOLDER", help=f"a bundled name ({', '.join(names)}) and the trained pipeline folder")
    parser.add_argument("--min-psnr", type=float, default=45.0, help="fp16 vs fp32 output agreement required (dB)")
    args = parser.parse_args()
    for item in args.models:
        name, _, source = item.partition("=")
        if name not in names or not source:
            raise SystemExit(f"{item!r}: give NAME=FOLDER with NAME one of {', '.join(names)}")
        target = bundled_model_dir(names[name])
        target.parent.mkdir(parents=True, exist_ok=True)
        export(Path(source), target)
        size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 2**20
        print(f"{name}: {source} -> {target} ({size:.1f} MiB)")
        agreement = psnr(example_output(target), example_output(Path(source))).item()
        print(f"{name}: fp16-stored vs fp32 output, same seed: PSNR {agreement:.2f} dB")
        if agreement < args.min_psnr:
            raise SystemExit(f"fp16 storage changes the output measurably ({agreement:.2f} dB < {args.min_psnr} dB): ship fp32")


if __name__ == "__main__":
    main()
