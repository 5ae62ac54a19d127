"""Upsample image files or folders to any scale (-s 3.7) or exact size (--size WIDTHxHEIGHT).

Output names: <stem>_x<scale>.png or <stem>_<W>x<H>.png; with several samples each gets _seed<S>,
the --seed that gives that sample alone (sample k of --seed S is drawn with seed S+k). Images found
in an input folder keep their sub-folder under OUT. OUT is a single file when it ends in an image
extension (one input file, one sample). Existing outputs are refused unless --overwrite (replace)
or --skip-existing (keep them, upscale the rest). In a run over several images a bad file is
reported and skipped, and the exit status is 1 if any failed. Scales below 1 are refused: this
command makes images larger. Under `accelerate launch --num_processes N -m arbiscale.cli.main upscale ...`
(GPUs, nodes, or CPU processes with ACCELERATE_USE_CPU=1) each process upscales every N-th input:
the same files as one process, each written once.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import BUNDLED_UPSCALERS
from ..errors import UserError
from .flags import as_flags
from .inference_options import (
    UPSCALE_SAMPLING,
    add_inference_options,
    add_upscale_options,
    check_side_limit,
    generators,
    int_at_least,
    load_sr_model,
    max_side,
    parse_seed,
    positive_float,
    process_state,
    refuse_existing,
    sampling_settings,
    size_option,
    upscale_settings,
)

if TYPE_CHECKING:
    from PIL import Image

ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
# Options of the latent pipeline's working size and tiling, which an IDM-style model (one image-space
# sampling at the output size) has no use for: flag -> argparse attribute.
IDM_UNUSED = {"--tile": "tile", "--tile-overlap": "tile_overlap", "--max-memory": "max_memory", "--max-latent-side": "max_latent_side"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("upscale", help="upsample images to any scale or size", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder, or a file name for one input and one sample")
    parser.add_argument("-s", "--scale", metavar="S", help="scale factor, at least 1, e.g. 3.7 (output = round(w * s) x round(h * s))")
    parser.add_argument("--size", metavar="WxH", help="exact output size WIDTHxHEIGHT, e.g. 1920x1080 (aspect ratio free)")
    parser.add_argument("--num-samples", default="1", metavar="K", help="samples per input (default 1)")
    parser.add_argument(
        "--max-latent-side",
        metavar="N",
        help="cap on the sampled latent's longer side (default 8 x the model's training latent side, but never below the "
        "input's own resolution; an explicit cap has no such floor)",
    )
    parser.add_argument(
        "--tile",
        metavar="N",
        help="sample, encode and decode in tiles of N x N latent cells (N x f pixels of the working image); the working "
        "size stays the same. Default: tiles only where the whole image does not fit in memory. A LIIF model: "
        "its encoder runs in tiles of N x N input pixels (the same output, less memory)",
    )
    parser.add_argument("--tile-overlap", metavar="N", help="latent cells shared by neighbouring sampling tiles (default tile / 4)")
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget, e.g. 4GB (K/M/G are powers of 1024), from which tile and query-chunk sizes are chosen "
        "(how the picture is computed, not what it is). Default: the free memory",
    )
    add_inference_options(parser, BUNDLED_UPSCALERS, **UPSCALE_SAMPLING)
    add_upscale_options(parser)
    parser.set_defaults(run=run)


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(image path, its output sub-folder) for every input file and every image inside an input folder."""
    from ..data.images import list_images

    found = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found += [(image, image.parent.relative_to(path)) for image in list_images(path)]
        elif path.is_file():
            found.append((path, Path()))
        else:
            raise UserError(f"input {path} does not exist: give image files or folders")
    return found


def plan_outputs(args: argparse.Namespace, inputs: list[tuple[Path, Path]], num_samples: int, seed: int, tag: str) -> list[list[Path]]:
    """The output paths of every input (one per sample), refusing collisions and existing files up front."""
    from ..data.images import IMAGE_EXTENSIONS

    target = Path(args.output)
    if target.suffix.lower() in IMAGE_EXTENSIONS:
        if len(inputs) != 1 or num_samples != 1:
            raise UserError(f"-o {target} is a file name but there will be {len(inputs) * num_samples} outputs: give a folder")
        plan = [[target]]
    else:
        suffixes = [f"_seed{seed + k}" if num_samples > 1 else "" for k in range(num_samples)]
        plan = [[target / folder / f"{path.stem}_{tag}{suffix}.png" for suffix in suffixes] for path, folder in inputs]
    flat = [path for paths in plan for path in paths]
    if len(set(flat)) != len(flat):
        duplicate = next(path for path in flat if flat.count(path) > 1)
        raise UserError(f"two inputs would both be written to {duplicate}: upscale same-named files in separate runs")
    refuse_existing(args, flat)
    return plan


def with_alpha(image: Image.Image, alpha: Image.Image | None, suffix: str) -> Image.Image:
    """Re-attach the input's transparency, upscaled; formats without alpha get it composited on white."""
    from PIL import Image

    if alpha is None:
        return image
    alpha = alpha.resize(image.size, Image.Resampling.BICUBIC)
    if suffix.lower() in ALPHA_SUFFIXES:
        image.putalpha(alpha)
        return image
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=alpha)
    return background


def run(args: argparse.Namespace) -> int:
    if (args.scale is None) == (args.size is None):
        raise UserError("give exactly one of -s/--scale or --size")
    scale = positive_float(args.scale, "--scale") if args.scale is not None else None
    if scale is not None and scale < 1:
        raise UserError(f"--scale {args.scale} is below 1: this command makes images larger; shrink with an image tool (e.g. Pillow's resize)")
    # The commonest mistakes are answered above in a fraction of a second, before torch is imported.
    import torch
    from tqdm.auto import tqdm

    from ..baselines.idm import IDMStyleSR
    from ..data.images import image_to_tensor, load_image_with_alpha, save_image, tensor_to_image
    from ..geometry import format_size
    from ..models.liif import LIIF
    from ..pipelines.memory import parse_memory
    from ..pipelines.tiled_decode import tiled_features
    from ..precision import autocast
    from ..sampling.sizes import output_size

    size = size_option(args.size, "--size") if args.size is not None else None
    limit = max_side(args)
    if size is not None:
        check_side_limit(size, limit)
    num_samples = int_at_least(args.num_samples, "--num-samples")
    settings = sampling_settings(args) | upscale_settings(args)
    max_latent_side = int_at_least(args.max_latent_side, "--max-latent-side") if args.max_latent_side is not None else None
    tiling = dict(
        tile_size=int_at_least(args.tile, "--tile") if args.tile is not None else None,
        tile_overlap=int_at_least(args.tile_overlap, "--tile-overlap", 0) if args.tile_overlap is not None else None,
        max_memory=parse_memory(args.max_memory) if args.max_memory is not None else None,
    )
    seed = parse_seed(args)
    state, device, dtype = process_state(args)
    inputs = collect_inputs(args.inputs)
    tag = f"x{scale:g}" if scale is not None else format_size(size)
    plan = plan_outputs(args, inputs, num_samples, seed, tag)
    # Several processes (accelerate launch): each takes every N-th input, so every output is written once.
    inputs, plan = inputs[state.process_index :: state.num_processes], plan[state.process_index :: state.num_processes]
    pipe = load_sr_model(args.model, device, progress=not args.no_progress)
    regression, image_space = isinstance(pipe, LIIF), isinstance(pipe, IDMStyleSR)
    if not (regression or image_space):
        pipe.enable_tiling(**tiling)
    if regression and num_samples > 1:
        raise UserError(f"--model {args.model} is a LIIF model, which gives one output per input: drop --num-samples")
    if image_space and (given := [flag for flag, value in IDM_UNUSED.items() if getattr(args, value) is not None]):
        raise UserError(f"--model {args.model} is an IDM-style model, which samples the whole output at once: drop {given[0]}")
    progress = partial(tqdm, desc="sampling", leave=False, disable=args.no_progress or None)
    failures = 0
    for (path, _), outputs in zip(inputs, plan):
        if args.skip_existing and all(output.exists() for output in outputs):
            print(f"{path}: kept the existing {', '.join(map(str, outputs))}")
            continue
        try:
            rgb, alpha = load_image_with_alpha(path)
            out_size = output_size((rgb.height, rgb.width), scale, size)
            check_side_limit(out_size, limit)
            if regression:
                lr = image_to_tensor(rgb).unsqueeze(0).to(device)
                with torch.no_grad():
                    features = pipe.encode(lr) if tiling["tile_size"] is None else tiled_features(pipe.encoder, lr, tiling["tile_size"])
                images = pipe.render(features, out_size)
            elif image_space:
                lr = image_to_tensor(rgb).unsqueeze(0).expand(num_samples, -1, -1, -1)
                with autocast(device, dtype):
                    images = pipe.upscale(lr, out_size, generator=generators(seed, num_samples), progress_bar=progress, **settings)
            else:
                images = pipe(
                    image_to_tensor(rgb),
                    scale=scale,
                    size=size,
                    generator=generators(seed, num_samples),
                    num_samples=num_samples,
                    max_latent_side=max_latent_side,
                    autocast_dtype=dtype,
                    **settings,
                ).images
            for image, output in zip(images, outputs):
                if args.skip_existing and output.exists():
                    continue
                save_image(with_alpha(tensor_to_image(image), alpha, output.suffix), output, overwrite=args.overwrite)
                print(f"{path} -> {output}")
        except UserError as error:
            if len(inputs) == 1:
                raise
            failures += 1
            print(f"arbiscale upscale: error: skipped {path}: {as_flags(str(error))}", file=sys.stderr)
    return 1 if failures else 0
