"""Generate new images, each rendered at one or more sizes (--size WIDTHxHEIGHT, repeatable) from one latent.

Image i is sampled with seed S + i (S: --seed) and rendered at every --size, written as
seed<S+i>_<W>x<H>.png, so one seed always names (and reproduces) the same picture. Existing outputs
are refused unless --overwrite (replace) or --skip-existing (keep them, make the rest). Under
`accelerate launch --num_processes N -m arbiscale.cli.main generate ...` each process makes every N-th image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import BUNDLED_GENERATORS, GENERATION_DDIM_ETA, GENERATION_SAMPLING
from ..errors import UserError
from .inference_options import (
    add_inference_options,
    check_side_limit,
    generators,
    int_at_least,
    load_pipeline,
    max_side,
    parse_seed,
    process_state,
    refuse_existing,
    sampling_settings,
    size_option,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate images, each rendered at one or more sizes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--size", action="append", default=[], metavar="WxH", help="output size WIDTHxHEIGHT, e.g. 256x192; repeat to render each image at several sizes")
    parser.add_argument("--num", default="1", metavar="N", help="number of images (default 1)")
    parser.add_argument("--batch-size", default="4", metavar="B", help="images sampled together (default 4); does not change the images")
    parser.add_argument("--latent-size", metavar="WxH", help="latent size WIDTHxHEIGHT to sample (default: the model's training latent size)")
    add_inference_options(parser, BUNDLED_GENERATORS, GENERATION_SAMPLING["sampler"], GENERATION_SAMPLING["num_inference_steps"], GENERATION_DDIM_ETA)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.images import IMAGE_EXTENSIONS, save_image
    from ..geometry import format_size
    from ..pipelines.generate import GenerationPipeline

    if not args.size:
        raise UserError("give at least one --size WIDTHxHEIGHT, e.g. --size 384x256")
    sizes = list(dict.fromkeys(size_option(text, "--size") for text in args.size))
    limit = max_side(args)
    for size in sizes:
        check_side_limit(size, limit)
    num = int_at_least(args.num, "--num")
    batch_size = int_at_least(args.batch_size, "--batch-size")
    latent_size = size_option(args.latent_size, "--latent-size") if args.latent_size is not None else None
    seed = parse_seed(args)
    settings = sampling_settings(args)
    state, device, dtype = process_state(args)
    folder = Path(args.output)
    if folder.suffix.lower() in IMAGE_EXTENSIONS:
        raise UserError(f"-o {folder} looks like a file name: generate writes a folder of images, give a folder")
    names = [[folder / f"seed{seed + i}_{format_size(size)}.png" for size in sizes] for i in range(num)]
    refuse_existing(args, [path for paths in names for path in paths])
    noise = generators(seed, num)  # image i is drawn with seed + i alone, whatever the batch or process
    pipe = load_pipeline(GenerationPipeline, args.model, device, progress=not args.no_progress)
    # Several processes (accelerate launch): each makes every N-th image, so every file is written once.
    mine = list(range(num))[state.process_index :: state.num_processes]
    for start in range(0, len(mine), batch_size):
        batch = mine[start : start + batch_size]
        if args.skip_existing and all(path.exists() for i in batch for path in names[i]):
            continue
        result = pipe(sizes, num_images=len(batch), latent_size=latent_size, generator=[noise[i] for i in batch], autocast_dtype=dtype, **settings)
        for index, images in enumerate(result.images):
            for i, image in zip(batch, images):
                path = names[i][index]
                if args.skip_existing and path.exists():
                    continue
                save_image(image, path, overwrite=args.overwrite)
                print(path)
    return 0
