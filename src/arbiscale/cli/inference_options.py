"""Options and checks shared by `arbiscale upscale` and `arbiscale generate`.

Values are parsed here rather than by argparse so that a bad one is a one-line UserError that
names its option, like every other user mistake.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import DEFAULT_DDIM_ETA, DEFAULT_SAMPLING, SAMPLER_NAMES
from ..errors import UserError

if TYPE_CHECKING:
    import torch

    from ..pipelines.base import LatentImplicitPipeline

# --dtype names -> torch dtype attribute names (torch is imported only once a command runs).
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DEFAULT_MAX_SIDE = 20000


def bundled_models_help(models: dict[str, str]) -> str:
    """'a bundled model's name (A, the default; B) or a saved model folder' for `--model`."""
    first, *others = models
    names = "; ".join([f"{first}, the default", *others])
    return f"a bundled model's name ({names}; MODEL_CARD.md) or a saved model folder"


def add_sampling_options(parser: argparse.ArgumentParser, sampler: str = "ddim", steps: int = 50, ddim_eta: float = 1.0, seed_help: str = "") -> None:
    """--steps, --sampler, --eta and --seed, with the command's defaults (each declared here only)."""
    parser.add_argument("--steps", metavar="N", default=str(steps), help=f"sampling steps (default {steps}; the paper: 200 with ddim, eta 1)")
    parser.add_argument("--sampler", metavar="NAME", default=sampler, help=f"one of {', '.join(SAMPLER_NAMES)} (default {sampler})")
    parser.add_argument("--eta", metavar="F", help=f"DDIM noise scale in [0, 1] (default {ddim_eta:g}; the paper: 1); ddim only")
    parser.add_argument("--seed", metavar="S", default="0", help=seed_help or "random seed; output k uses seed + k (default 0)")


def add_device_options(parser: argparse.ArgumentParser, dtype: str = "auto") -> None:
    """--device, --dtype (default `dtype`) and --threads."""
    parser.add_argument("--device", metavar="DEV", default="auto", help="cpu, cuda or auto (default auto: cuda if available)")
    dtype_help = "auto: bf16 autocast where the device computes bf16 natively (GPUs; CPUs with AVX512_BF16 or AMX), fp32 elsewhere" if dtype == "auto" else dtype
    parser.add_argument("--dtype", metavar="TYPE", default=dtype, help=f"auto, fp32, bf16 or fp16 network precision (default {dtype_help})")
    parser.add_argument(
        "--threads",
        metavar="N",
        default="auto",
        help="torch CPU threads (default auto: the cores other processes leave idle, measured at start, at least 1; "
        "OMP_NUM_THREADS, when set, is kept). Two threads on a busy 2-core machine are several times slower than one",
    )


def add_inference_options(parser: argparse.ArgumentParser, models: dict[str, str], sampler: str = "ddim", steps: int = 50, ddim_eta: float = 1.0) -> None:
    """Model, sampler, seed, device and precision options; `models` are the bundled ones the command can load by
    name; `sampler`, `steps` and `ddim_eta` are the command's defaults."""
    parser.add_argument("--model", metavar="NAME|DIR", help=bundled_models_help(models))
    add_sampling_options(parser, sampler, steps, ddim_eta)
    add_device_options(parser)
    parser.add_argument("--max-side", metavar="PX", default=str(DEFAULT_MAX_SIDE), help=f"largest output side in pixels (default {DEFAULT_MAX_SIDE})")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep existing output files and make only the missing ones (outputs are written atomically, so an interrupted run resumes where it stopped)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


# The upscaling commands' sampler defaults: the pipeline's own (`choices.DEFAULT_SAMPLING`).
UPSCALE_SAMPLING = {"sampler": DEFAULT_SAMPLING["sampler"], "steps": DEFAULT_SAMPLING["num_inference_steps"], "ddim_eta": DEFAULT_DDIM_ETA}


def add_upscale_options(parser: argparse.ArgumentParser) -> None:
    """The upsampling commands' options beyond sampling: `--strength` and `--lr-consistency`."""
    parser.add_argument(
        "--strength",
        metavar="F",
        default=str(DEFAULT_SAMPLING["strength"]),
        help="start sampling from the encoded input noised to this fraction of the schedule, in (0, 1] "
        f"(default {DEFAULT_SAMPLING['strength']:g}; 1: from pure noise, the paper's setting; lower keeps closer to the input)",
    )
    parser.add_argument(
        "--lr-consistency",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_SAMPLING["lr_consistency"],
        help="replace the output's low frequencies with the input's, so that it shrinks back to the input "
        f"(default {'on' if DEFAULT_SAMPLING['lr_consistency'] else 'off'}; the paper's method: --no-lr-consistency "
        "--strength 1 --sampler ddim --steps 200 --eta 1)",
    )


def upscale_settings(args: argparse.Namespace) -> dict:
    """UpscalePipeline keyword arguments for the options of `add_upscale_options`."""
    strength = positive_float(args.strength, "--strength")
    if strength > 1:
        raise UserError(f"--strength must be in (0, 1], got {args.strength}")
    return {"strength": strength, "lr_consistency": args.lr_consistency}


def int_at_least(text: str, option: str, minimum: int = 1) -> int:
    """A whole-number option value, at least `minimum`, or a one-line UserError naming the option."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise UserError(f"{option} {text!r} is not a whole number: give e.g. {option} {max(minimum, 4)}") from None
    if value < minimum:
        raise UserError(f"{option} must be at least {minimum}, got {value}")
    return value


def positive_float(text: str, option: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{option} {text!r} is not a number: give e.g. {option} 3.7") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{option} must be a positive finite number, got {text}")
    return value


def size_option(text: str, option: str) -> tuple[int, int]:
    from ..geometry import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise UserError(f"{option}: {error}") from None


def sampling_settings(args: argparse.Namespace) -> dict:
    """Pipeline keyword arguments for the sampler options."""
    if args.sampler not in SAMPLER_NAMES:
        raise UserError(f"--sampler {args.sampler!r} is unknown: choose one of {', '.join(SAMPLER_NAMES)}")
    settings = dict(num_inference_steps=int_at_least(args.steps, "--steps"), sampler=args.sampler, eta=None)
    if args.eta is not None:
        if args.sampler != "ddim":
            raise UserError(f"--eta only applies to --sampler ddim, not {args.sampler}: drop --eta")
        try:
            eta = float(args.eta)
        except ValueError:
            raise UserError(f"--eta {args.eta!r} is not a number: give a value in [0, 1]") from None
        if not 0.0 <= eta <= 1.0:
            raise UserError(f"--eta must be in [0, 1], got {args.eta}")
        settings["eta"] = eta
    return settings


def parse_seed(args: argparse.Namespace) -> int:
    try:
        seed = int(args.seed)
    except ValueError:
        raise UserError(f"--seed {args.seed!r} is not a whole number: give e.g. --seed 0") from None
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be between 0 and 2**64 - 1, got {seed}")
    return seed


# torch generators take seeds below 2**64.
MAX_SEED = 2**64 - 1


def generators(seed: int, count: int) -> list[torch.Generator]:
    """One CPU generator per output (seed + k): an output's noise does not depend on the batch or device."""
    import torch

    if seed + count - 1 > MAX_SEED:
        raise UserError(f"--seed {seed} with {count} outputs needs seeds up to {seed + count - 1}, past 2**64 - 1: give a smaller --seed")
    return [torch.Generator().manual_seed(seed + k) for k in range(count)]


def device_and_dtype(args: argparse.Namespace) -> tuple[torch.device, torch.dtype | None]:
    import torch

    if args.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {args.device!r} is unknown: choose cpu, cuda or auto")
    if args.dtype != "auto" and args.dtype not in DTYPES:
        raise UserError(f"--dtype {args.dtype!r} is unknown: choose auto or one of {', '.join(DTYPES)}")
    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise UserError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and cuda) else "cpu")
    if args.dtype == "fp16" and device.type == "cpu":
        raise UserError("--dtype fp16 needs a GPU: use --dtype bf16 or fp32 on the CPU")
    if args.dtype == "auto":
        from ..precision import native_bf16

        return device, torch.bfloat16 if native_bf16(device) else torch.float32
    return device, getattr(torch, DTYPES[args.dtype])


def idle_cores(interval: float = 0.2) -> int:
    """Cores of this process's CPU set that other processes leave idle, from /proc/stat sampled over
    `interval` seconds (at least 1; all of them where /proc/stat cannot be read). The load average
    lags by a minute, so a machine just freed would still look busy."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def busy_and_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields) - idle, sum(fields)

    try:
        busy_before, total_before = busy_and_total()
        time.sleep(interval)
        busy_after, total_after = busy_and_total()
    except (OSError, ValueError, IndexError):
        return cores
    machine_cores = os.cpu_count() or cores
    busy = machine_cores * (busy_after - busy_before) / max(1, total_after - total_before)
    return max(1, min(cores, round(machine_cores - busy)))


def process_state(args: argparse.Namespace):
    """(accelerate PartialState, device, autocast dtype) of this process. Under `accelerate launch
    --num_processes N` each process takes its share of the inputs (`state.process_index` of
    `state.num_processes`) on its own device; started alone, it is the only process."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    chosen, dtype = device_and_dtype(args)
    threads = getattr(args, "threads", "auto")
    if threads != "auto":
        torch.set_num_threads(int_at_least(threads, "--threads"))
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(idle_cores())
    # PartialState only forms a CPU process group (gloo) when told it runs on the CPU.
    on_cpu = args.device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    state = PartialState(cpu=on_cpu)
    return state, state.device if args.device == "auto" else chosen, dtype


def load_pipeline(pipeline_class: type[LatentImplicitPipeline], folder: str | None, device, progress: bool) -> LatentImplicitPipeline:
    """The pipeline saved in `folder`, or the bundled one it names (None: the default), on `device`."""
    pipe = pipeline_class.from_pretrained(folder).to(device)
    pipe.set_progress_bar_config(disable=not progress, leave=False)
    return pipe


def load_sr_model(folder: str | None, device, progress: bool = False):
    """An upsampler folder, told apart by its files: an UpscalePipeline has model_index.json, a LIIF or
    IDM-style model a config.json that names its class (what save_pretrained, `train liif|idm` and
    `convert liif` write). A bundled model's name (None: the default) is an UpscalePipeline.
    `progress`: the sampling progress bar."""
    import json

    from ..baselines.idm import IDMStyleSR
    from ..models.liif import LIIF
    from ..models.loading import load_component
    from ..pipelines import UpscalePipeline

    path = Path(folder) if folder is not None else None
    if path is None or UpscalePipeline.bundled_path(folder) is not None or (path / "model_index.json").is_file():
        return load_pipeline(UpscalePipeline, folder, device, progress)
    single_models = {cls.__name__: cls for cls in (LIIF, IDMStyleSR)}
    try:
        class_name = json.loads((path / LIIF.config_name).read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        class_name = None
    if class_name not in single_models:
        found = f"a saved {class_name}" if class_name else "no model_index.json or config.json"
        raise UserError(
            f"--model {folder} holds {found}: pass a bundled model's name ({', '.join(UpscalePipeline.bundled_models)}) "
            "or a saved UpscalePipeline, LIIF or IDM-style model folder (RUN_DIR/model)"
        )
    return load_component(single_models[class_name], path).to(device).eval()


def refuse_existing(args: argparse.Namespace, paths: list[Path]) -> None:
    """A one-line UserError when an output already exists and neither --overwrite nor --skip-existing was given."""
    existing = [path for path in paths if path.exists()]
    if existing and not (args.overwrite or args.skip_existing):
        more = f" (+{len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]}{more} already exists: pass --overwrite to replace or --skip-existing to keep it, or choose another -o")


def max_side(args: argparse.Namespace) -> int:
    return int_at_least(args.max_side, "--max-side")


def check_side_limit(size: tuple[int, int], limit: int) -> None:
    from ..geometry import format_size

    if max(size) > limit:
        raise UserError(f"output {format_size(size)} is over --max-side {limit}: ask for a smaller output or raise --max-side")
