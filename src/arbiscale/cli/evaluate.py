"""`arbiscale eval sr|gen`: measure upsampling or generation and write a report folder.

  arbiscale eval sr --data DIR --scales 2,3,4 [--protocol liif-benchmark] [--model DIR ...] [--baseline bicubic] --out REPORT
  arbiscale eval gen --model DIR --sizes 128x128,192x192 --num 50 [--ref DIR --inception FILE] --out REPORT

`eval sr` samples with the same defaults as `arbiscale upscale` (sampler, steps, strength, LR
consistency), so its numbers are those of what a user gets; its protocol defaults to liif-benchmark
(PSNR/SSIM on Y, shave = scale), and every report records the protocol and settings it used.

Both run sharded under `accelerate launch --multi_gpu --num_processes N -m arbiscale.cli.main eval ...`
(each process takes every N-th image; the main process alone writes the report). Without GPUs the same
command starts N CPU processes joined by gloo (accelerate's `--cpu` launcher starts only one process
unless it is given an MPI hostfile). Existing report files are kept unless --overwrite.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..choices import BUNDLED_GENERATORS, BUNDLED_UPSCALERS, EVAL_LAYOUTS, GENERATION_DDIM_ETA, METRIC_PROTOCOLS, RESIZE_METHODS, SELF_SSIM_MEASURES, SR_BASELINES
from ..errors import UserError
from .inference_options import (
    UPSCALE_SAMPLING,
    add_device_options,
    add_sampling_options,
    add_upscale_options,
    bundled_models_help,
    int_at_least,
    load_pipeline,
    load_sr_model,
    parse_seed,
    positive_float,
    process_state,
    sampling_settings,
    size_option,
    upscale_settings,
)

# Options that change where or how verbosely a run writes, not its numbers: left out of the recorded command.
_NOT_RECORDED = {"run", "command", "eval_command", "overwrite", "no_progress"}


def _add_common(parser: argparse.ArgumentParser, model_help: str, sampler: str = "ddim", steps: int = 50, ddim_eta: float = 1.0, model_action: str = "store") -> None:
    """Options both tasks share; `sampler`, `steps` and `ddim_eta` are the task's defaults (those of the matching
    command); networks run fp32 unless --dtype says otherwise, so reports compare across machines."""
    parser.add_argument("--model", action=model_action, help=model_help)
    parser.add_argument("--out", required=True, help="report folder (created; existing files are kept unless --overwrite)")
    parser.add_argument("--resize", default="matlab", help=f"bicubic convention, one of {', '.join(RESIZE_METHODS)} (default matlab)")
    add_sampling_options(parser, sampler, steps, ddim_eta, seed_help="base random seed (default 0)")
    add_device_options(parser, dtype="fp32")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing report")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate upsampling (sr) or generation (gen) and write a report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tasks = parser.add_subparsers(dest="eval_command", required=True, metavar="TASK")

    sr = tasks.add_parser(
        "sr",
        help="PSNR/SSIM/LR consistency/diversity per scale for a model and baselines",
        description="Upscale every evaluation image from a synthesised (or given) low-resolution copy at every scale, "
        "score the outputs against the originals and write results.json, report.md, a metric-vs-scale plot and grids.",
    )
    _add_common(
        sr,
        f"a bundled upscaler's name ({', '.join(BUNDLED_UPSCALERS)}), a saved UpscalePipeline folder, or a LIIF or "
        "IDM-style model folder (RUN_DIR/model of `train liif` or `train idm`; IDM samples with the same options). Repeat "
        "to score one of each kind side by side in one report (table and grids); omit to evaluate only --baseline methods",
        model_action="append",
        **UPSCALE_SAMPLING,
    )
    sr.add_argument("--data", required=True, help="evaluation images: a folder, DIV2K, an EDSR benchmark set, or a folder with --split")
    sr.add_argument("--split", help="text file listing the images to use, one path relative to --data a line")
    sr.add_argument("--layout", default="auto", help=f"auto or one of {', '.join(EVAL_LAYOUTS)} (default auto: detected)")
    sr.add_argument("--scales", required=True, help="comma-separated scales, e.g. 2,3,4,6,8,12 (non-integer allowed: 3.5)")
    sr.add_argument("--protocol", default="liif-benchmark", help=f"PSNR/SSIM protocol, one of {', '.join(METRIC_PROTOCOLS)} (default liif-benchmark: Y channel, shave = scale)")
    sr.add_argument("--baseline", action="append", default=[], help=f"also evaluate a baseline ({', '.join(SR_BASELINES)}); repeatable")
    sr.add_argument("--samples", default="1", help="samples per input image (default 1; >= 2 also measures diversity)")
    sr.add_argument("--max-images", help="evaluate only the first N images (sorted by name)")
    sr.add_argument("--grid-images", default="3", help="images shown in the grids (default 3; 0: no grids)")
    sr.add_argument("--grid-crop", default="256", help="side of the centre crop shown per grid cell, in output pixels (default 256)")
    sr.add_argument("--lpips-alex", help="torchvision AlexNet weights (alexnet-owt-7be5be79.pth) for LPIPS")
    sr.add_argument("--lpips-linear", help="lpips linear-head weights (weights/v0.1/alex.pth) for LPIPS")
    add_upscale_options(sr)
    sr.set_defaults(run=run_sr)

    gen = tasks.add_parser(
        "gen",
        help="SelfSSIM across sizes and, with an Inception file, FID/KID/precision/recall",
        description="Generate images, render each at every size from its one latent, and measure scale consistency "
        "(SelfSSIM) and, given real images and an Inception file, FID/KID/precision/recall.",
    )
    _add_common(gen, bundled_models_help(BUNDLED_GENERATORS), ddim_eta=GENERATION_DDIM_ETA)
    gen.add_argument("--sizes", required=True, help="comma-separated output sizes WIDTHxHEIGHT, e.g. 128x128,192x192,256x192")
    gen.add_argument("--num", default="16", help="number of generated images (default 16)")
    gen.add_argument("--batch-size", default="4", help="images sampled together (default 4); does not change the images")
    gen.add_argument("--measure", default="ssim", help=f"SelfSSIM measure, one of {', '.join(SELF_SSIM_MEASURES)} (default ssim)")
    gen.add_argument("--ref", help="folder of real images for FID/KID/precision/recall")
    features = gen.add_mutually_exclusive_group()
    features.add_argument("--inception", help="TorchScript Inception feature extractor (e.g. inception-2015-12-05.pt)")
    features.add_argument(
        "--encoder-features",
        action="store_true",
        help="with --ref and no Inception file: distances on the model's own encoder latents (FD-encoder, KD-encoder; comparable across models on one encoder only, not with FIDs)",
    )
    gen.add_argument("--grid-images", default="4", help="images shown in samples.png (default 4; 0: none)")
    gen.add_argument("--neighbours", help="folder of the training images: each sample's nearest one is found and shown beside it")
    gen.add_argument("--neighbours-split", help="text file listing the training images, relative to --neighbours")
    gen.set_defaults(run=run_gen)

    renders = tasks.add_parser(
        "renders",
        help="the implicit decoder vs bicubic against exact vector renders at larger sides",
        description="Encode each image's render at the input side, decode it at every larger side of a vector set "
        "(scripts/build_vector_set.py) and score it, beside a bicubic upscale, against the exact render there: "
        "results.json, report.md, a PSNR/SSIM-vs-scale plot and a grid.",
    )
    renders.add_argument("--model", help=f"{bundled_models_help(BUNDLED_GENERATORS)}; or an upscaler's name or folder (its decoder is scored)")
    renders.add_argument("--renders", required=True, help="the vector set's folder: RENDERS/<side>/<file name>")
    renders.add_argument("--split", help="file names to score, one a line (default: RENDERS/<input side>/val.txt)")
    renders.add_argument("--input-side", help="side of the encoded renders in pixels (default: the model's training image side)")
    renders.add_argument("--max-images", help="score only the first N images of the split")
    renders.add_argument("--grid-images", default="3", help="images shown in grid.png (default 3; 0: none)")
    renders.add_argument("--out", required=True, help="report folder (created; existing files are kept unless --overwrite)")
    renders.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    renders.add_argument("--overwrite", action="store_true", help="replace the files of an existing report")
    renders.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    renders.set_defaults(run=run_renders, dtype="fp32")


def recorded_command(args: argparse.Namespace) -> str:
    """The command line that reproduces these numbers, rebuilt from the parsed options."""
    words = ["arbiscale", "eval", args.eval_command]
    for name, value in vars(args).items():
        if name in _NOT_RECORDED or value is None or value is False or value == []:
            continue
        option = "--" + name.replace("_", "-")
        if value is True:
            words.append(option)
        else:
            for item in value if isinstance(value, list) else [value]:
                words += [option, str(item)]
    return shlex.join(words)


def model_label(pipeline_class, model: str | None) -> str:
    """How a report names the model: "bundled NAME" (None: the default), or the folder's absolute path."""
    if pipeline_class.bundled_path(model) is None:
        return str(Path(model).resolve())
    return f"bundled {model or next(iter(pipeline_class.bundled_models))}"


def _comma_list(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UserError(f"{option} is empty: give comma-separated values")
    return list(dict.fromkeys(items))


def _choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise UserError(f"{option} {value!r} is unknown: choose one of {', '.join(choices)}")
    return value


def _setup(args: argparse.Namespace):
    """(state, device, autocast dtype, sampling settings, seed) shared by both tasks."""
    state, device, dtype = process_state(args)
    _choice(args.resize, RESIZE_METHODS, "--resize")
    return state, device, dtype, sampling_settings(args), parse_seed(args)


def _sampler_header(settings: dict, pipeline_class) -> dict:
    """The sampler, steps and eta a report records (DDIM's eta as the pipeline resolves it)."""
    eta = pipeline_class.resolve_eta(settings["sampler"], settings["eta"])
    return {"sampler": settings["sampler"], "steps": settings["num_inference_steps"], "eta": eta}


def run_sr(args: argparse.Namespace) -> int:
    from ..baselines.idm import IDMStyleSR
    from ..data.eval_sets import open_eval_set
    from ..evaluation.report import check_report_dir
    from ..evaluation.sr import SrEvalConfig, SrRun, evaluate_sr, evaluated_methods, named_models, report_files, write_sr_report
    from ..metrics import LPIPS, load_lpips
    from ..pipelines import UpscalePipeline

    state, device, dtype, settings, seed = _setup(args)
    scales = tuple(positive_float(text, "--scales") for text in _comma_list(args.scales, "--scales"))
    baselines = tuple(dict.fromkeys(args.baseline))
    if not args.model and not baselines:
        raise UserError("nothing to evaluate: give --model DIR, or --baseline bicubic to evaluate a baseline only")
    samples = int_at_least(args.samples, "--samples")
    models = named_models([load_sr_model(model, device) for model in args.model or []])
    sampled = any(isinstance(model, (UpscalePipeline, IDMStyleSR)) for model in models.values())
    upscale = upscale_settings(args)
    config = SrEvalConfig(
        scales=scales,
        protocol=_choice(args.protocol, tuple(METRIC_PROTOCOLS), "--protocol"),
        resize=args.resize,
        baselines=baselines,
        samples=samples if sampled else 1,
        seed=seed,
        sampling=settings | upscale,
        autocast_dtype=dtype,
        grid_images=int_at_least(args.grid_images, "--grid-images", 0),
        grid_crop=int_at_least(args.grid_crop, "--grid-crop"),
    )
    out = Path(args.out)
    check_report_dir(out, report_files(config), args.overwrite)
    max_images = int_at_least(args.max_images, "--max-images") if args.max_images is not None else None
    eval_set = open_eval_set(args.data, args.layout, args.split, max_images)
    lpips = load_lpips(args.lpips_alex, args.lpips_linear)
    if isinstance(lpips, LPIPS):
        lpips = lpips.to(device)
    evaluated = evaluate_sr(eval_set, config, models, lpips, state, device, progress=not args.no_progress)
    if evaluated is None:
        return 0
    results, grids = evaluated
    run = SrRun(
        command=recorded_command(args),
        models=[model_label(UpscalePipeline, model) for model in args.model or []],
        model_classes=[type(model).__name__ for model in models.values()],
        data=str(Path(args.data).resolve()),
        layout=eval_set.layout,
        split=str(Path(args.split).resolve()) if args.split is not None else None,
        num_images=len(eval_set.images),
        lpips=f"AlexNet {args.lpips_alex}, heads {args.lpips_linear}" if isinstance(lpips, LPIPS) else str(lpips),
        processes=state.num_processes,
        **(_sampler_header(settings, UpscalePipeline) | upscale if sampled else {}),
    )
    for path in write_sr_report(out, run, results, grids, config, evaluated_methods(config, models), args.overwrite):
        print(path)
    return 0


def run_gen(args: argparse.Namespace) -> int:
    from ..data.images import list_images
    from ..evaluation.gen import REPORT_FILES, EncoderFeatures, GenEvalConfig, evaluate_gen, write_gen_report
    from ..evaluation.report import check_report_dir
    from ..metrics import FeatureExtractor, Unavailable, load_feature_extractor
    from ..metrics.psnr_ssim import ms_ssim_min_size
    from ..pipelines import GenerationPipeline

    state, device, dtype, settings, seed = _setup(args)
    sizes = tuple(size_option(text, "--sizes") for text in _comma_list(args.sizes, "--sizes"))
    if args.neighbours_split is not None and args.neighbours is None:
        raise UserError("--neighbours-split needs --neighbours DIR, the folder its names are relative to")
    config = GenEvalConfig(
        sizes=sizes,
        num_images=int_at_least(args.num, "--num"),
        seed=seed,
        batch_size=int_at_least(args.batch_size, "--batch-size"),
        resize=args.resize,
        measure=_choice(args.measure, SELF_SSIM_MEASURES, "--measure"),
        sampling=settings,
        autocast_dtype=dtype,
        grid_images=int_at_least(args.grid_images, "--grid-images", 0),
        neighbours=tuple(list_images(args.neighbours, args.neighbours_split)) if args.neighbours is not None else (),
    )
    smallest = min(min(size) for size in sizes)
    if config.measure == "ms-ssim" and smallest < ms_ssim_min_size():
        raise UserError(f"--measure ms-ssim needs every size at least {ms_ssim_min_size()} px a side, got {smallest}: use --measure ssim")
    wants_features = args.inception is not None or args.encoder_features
    option = "--inception" if args.inception is not None else "--encoder-features"
    if wants_features and args.ref is None:
        raise UserError(f"{option} needs --ref DIR, the real images to compare the generated ones with")
    if wants_features and config.num_images < 2:
        raise UserError("FID/KID/precision/recall need at least 2 generated images: raise --num")
    out = Path(args.out)
    check_report_dir(out, REPORT_FILES, args.overwrite)
    reference = list_images(args.ref) if args.ref is not None else None
    if reference is not None and wants_features and len(reference) < 2:
        raise UserError(f"--ref {args.ref} holds {len(reference)} image: FID/KID/precision/recall need at least 2")
    pipe = load_pipeline(GenerationPipeline, args.model, device, progress=False)
    if args.encoder_features:
        extractor = EncoderFeatures(pipe.autoencoder, pipe.denoiser.config.sample_size[0] * pipe.autoencoder.downsample_factor)
    else:
        extractor = load_feature_extractor(args.inception)
        if isinstance(extractor, FeatureExtractor):
            extractor = extractor.to(device)
    evaluated = evaluate_gen(pipe, config, extractor, reference, state, device, progress=not args.no_progress)
    if evaluated is None:
        return 0
    results, rows = evaluated
    header = {
        "task": "gen",
        "command": recorded_command(args),
        "model": model_label(GenerationPipeline, args.model),
        "num_images": config.num_images,
        "sizes": [list(size) for size in sizes],
        **_sampler_header(settings, GenerationPipeline),
        "seed": seed,
        "ref": str(Path(args.ref).resolve()) if args.ref is not None else None,
        "inception": str(Path(args.inception).resolve()) if args.inception is not None else None,
        "features": extractor.source if not isinstance(extractor, Unavailable) else None,
        "processes": state.num_processes,
    }
    for path in write_gen_report(out, header, results, rows, config, args.overwrite):
        print(path)
    return 0


def run_renders(args: argparse.Namespace) -> int:
    from ..data.renders import render_sides
    from ..evaluation.renders import REPORT_FILES, RenderEvalConfig, evaluate_renders, write_renders_report
    from ..evaluation.report import check_report_dir
    from ..pipelines import GenerationPipeline
    from ..pipelines import load_pipeline as load_any_pipeline

    root = Path(args.renders)
    if not root.is_dir():
        raise UserError(f"--renders {root} is not a folder: give the --out folder of scripts/build_vector_set.py")
    out = Path(args.out)
    check_report_dir(out, REPORT_FILES, args.overwrite)
    state, device, _ = process_state(args)
    model = args.model if args.model is not None else next(iter(GenerationPipeline.bundled_models))
    pipe = load_any_pipeline(model).to(device)
    autoencoder = pipe.autoencoder
    training_side = pipe.denoiser.config.sample_size[0] * autoencoder.downsample_factor
    input_side = int_at_least(args.input_side, "--input-side") if args.input_side is not None else training_side
    sides = tuple(render_sides(root, input_side + 1))
    if not (root / str(input_side)).is_dir() or not sides:
        raise UserError(f"--renders {root} needs a {input_side}/ folder (the input side) and larger ones; choose --input-side from its folders")
    split = Path(args.split) if args.split is not None else root / str(input_side) / "val.txt"
    try:
        names = [line.strip() for line in split.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the split {split} ({type(error).__name__}): give a UTF-8 text file of file names") from None
    if args.max_images is not None:
        names = names[: int_at_least(args.max_images, "--max-images")]
    missing = [f"{side}/{name}" for name in names for side in (input_side, *sides) if not (root / str(side) / name).is_file()]
    if not names or missing:
        found = f"{missing[0]} is missing" if missing else "it lists no file"
        raise UserError(f"split {split}: {found} under {root}: list file names present at every side")
    config = RenderEvalConfig(input_side, sides, grid_images=int_at_least(args.grid_images, "--grid-images", 0))
    results, rows = evaluate_renders(autoencoder, root, names, config, progress=not args.no_progress and state.is_main_process)
    header = {
        "task": "renders",
        "command": recorded_command(args),
        "model": model_label(type(pipe), model),
        "renders": str(root.resolve()),
        "split": str(split),
        "num_images": len(names),
        "input_side": input_side,
    }
    for path in write_renders_report(out, header, results, rows, config, args.overwrite):
        print(path)
    return 0
