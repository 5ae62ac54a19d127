"""Super-resolution evaluation: every image of a set at every scale, for the model and the baselines.

What a number means (also written into every report):
- Pairs are whole images (`arbiscale.data.eval_sets`: modcrop, LR from files or synthesised).
- Every output is clamped and rounded to 8 bits before scoring: the images a user would save.
- PSNR/SSIM follow the named protocol (`arbiscale.metrics.protocols`). LR consistency downscales the
  output with the bicubic that made the LR (MATLAB for LR files) and is an MSE on the [0, 1] scale.
- With K samples per input, each image's score is the mean over its K samples (image i, sample k is
  drawn with seed S + i*K + k, at every scale); diversity (K >= 2) is the mean pairwise absolute
  difference between them. Dataset numbers are means over images.
- The model is a diffusion `UpscalePipeline` (method "ours"), the IDM-style diffusion baseline (method
  "idm", sampled with the same settings), or the LIIF regression baseline (method "liif"):
  deterministic, so it renders one output per input and sampler, steps and seeds do not apply.
- "seconds" is the wall time of each method's upsampling call per output image, on the machine and
  with the threads of this run (shared or not): compare methods within one report.
- Sharding: process p of n evaluates images p, p+n, ...; the records are gathered on the main process,
  sorted by image, and reduced there, so the report does not depend on the number of processes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from ..baselines.idm import IDMStyleSR
from ..choices import SR_BASELINES as BASELINES
from ..data.eval_sets import LR_FILE_SOURCE, EvalPair, EvalSet, load_hr, make_pair
from ..data.images import save_image
from ..errors import UserError
from ..metrics import LPIPS, Unavailable, diversity, lr_consistency, mean_colour_error, metric_settings, quantize_8bit, resize
from ..models.liif import LIIF
from ..pipelines import UpscalePipeline
from ..precision import autocast
from .report import centre_crop, check_report_dir, format_value, image_grid, markdown_table, nearest_upscale, plot_metrics_vs_scale, write_json, write_text

OURS = "ours"
LIIF_METHOD = "liif"
IDM_METHOD = "idm"
# What `eval sr` evaluates: our pipeline, or one of the trained baselines.
SrModel = UpscalePipeline | LIIF | IDMStyleSR
# (key, table title); LPIPS and diversity appear only when they were computed.
METRICS = (
    ("psnr", "PSNR (dB)"),
    ("ssim", "SSIM"),
    ("lr_consistency", "LR consistency (MSE, [0,1] scale)"),
    ("colour_error", "mean colour error (largest channel, [0,255] scale)"),
    ("lpips", "LPIPS (AlexNet)"),
    ("diversity", "diversity (mean pairwise |a-b|, [0,1] scale)"),
    ("seconds", "seconds per output image (this run's machine)"),
)
# The MATLAB bicubic made the DIV2K and benchmark LR files.
FILE_LR_RESIZE = "matlab"


@dataclass(frozen=True)
class SrEvalConfig:
    """Everything an SR evaluation depends on besides the data and the model."""

    scales: tuple[float, ...]
    protocol: str
    resize: str = "matlab"
    baselines: tuple[str, ...] = ("bicubic",)
    samples: int = 1
    seed: int = 0
    sampling: dict = field(default_factory=dict)
    autocast_dtype: torch.dtype | None = None
    grid_images: int = 3
    grid_crop: int = 256

    def __post_init__(self) -> None:
        unknown = [name for name in self.baselines if name not in BASELINES]
        if unknown:
            raise UserError(f"unknown baseline {unknown[0]!r}: choose from {', '.join(BASELINES)}")
        if not self.scales:
            raise UserError("give at least one scale in `scales`, e.g. 2, 3, 4")
        for scale in self.scales:
            metric_settings(self.protocol, scale, self.resize)  # refuses bad protocol, resize or scale now


@dataclass(frozen=True)
class SrRun:
    """What a report records of the run beside its `SrEvalConfig`: how to repeat it and what it evaluated.
    The sampling fields are None when no diffusion model was sampled (baselines, LIIF)."""

    command: str
    models: list[str]
    model_classes: list[str]
    data: str
    layout: str
    split: str | None
    num_images: int
    lpips: str
    processes: int
    sampler: str | None = None
    steps: int | None = None
    eta: float | None = None
    strength: float | None = None
    lr_consistency: bool | None = None

    def header(self, config: SrEvalConfig) -> dict:
        """The header of results.json: the run, the config's settings, and the seed where one was used."""
        settings = {
            "protocol": config.protocol,
            "resize": config.resize,
            "scales": list(config.scales),
            "baselines": list(config.baselines),
            "samples": config.samples,
            "seed": config.seed if self.sampler is not None else None,
        }
        return {"task": "sr", **asdict(self), **settings}


def scale_key(scale: float) -> str:
    """The JSON / file-name form of a scale: 2, 3.5, 12."""
    return f"{scale:g}"


def baseline_upscale(name: str, lr: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """A training-free upsampling of `lr` to `size`: bicubic with the named kernel, or pixel replication."""
    if name == "bicubic":
        return resize(lr, size, method)
    return nearest_upscale(lr, size)


def _scores(outputs: torch.Tensor, pair: EvalPair, protocol: str, scale: float, resize_method: str, lpips: LPIPS | Unavailable) -> dict:
    """Per-image metrics of (K,3,H,W) outputs of one input: means over the K samples."""
    settings = metric_settings(protocol, scale, resize_method)
    hr = pair.hr.expand_as(outputs)
    lr_method = FILE_LR_RESIZE if pair.lr_source == LR_FILE_SOURCE else pair.lr_source
    scores = {
        "psnr": settings.psnr(outputs, hr).mean().item(),
        "ssim": settings.ssim(outputs, hr).mean().item(),
        "lr_consistency": lr_consistency(outputs, pair.lr.expand(len(outputs), -1, -1, -1), lr_method).mean().item(),
        "colour_error": mean_colour_error(outputs, hr).mean().item(),
    }
    if isinstance(lpips, LPIPS):
        scores["lpips"] = lpips(outputs, hr).mean().item()
    if len(outputs) > 1:
        scores["diversity"] = diversity(list(outputs.split(1))).item()
    return scores


def model_method(pipe: SrModel) -> str:
    """The report's name for an evaluated model: "liif" or "idm" for those baselines, "ours" for a pipeline."""
    return LIIF_METHOD if isinstance(pipe, LIIF) else IDM_METHOD if isinstance(pipe, IDMStyleSR) else OURS


def named_models(pipes: list[SrModel]) -> dict[str, SrModel]:
    """{method name: model} for models evaluated side by side in one report; one model of each kind."""
    models: dict[str, SrModel] = {}
    for pipe in pipes:
        name = model_method(pipe)
        if name in models:
            raise UserError(f"two models of kind {name!r} in one evaluation: give one of each (ours, liif, idm), or evaluate them in separate runs")
        models[name] = pipe
    return models


def evaluated_methods(config: SrEvalConfig, models: dict[str, SrModel]) -> list[str]:
    """Method names in report order: the baselines, then the models."""
    return [*config.baselines, *models]


def model_upscale(pipe: SrModel, lr: torch.Tensor, size: tuple[int, int], config: SrEvalConfig, index: int) -> torch.Tensor:
    """The model's outputs (K, 3, H, W) for one input: LIIF's one, or K samples of a diffusion model,
    sample k drawn with seed S + index*K + k; the networks run autocast when `autocast_dtype` asks for it."""
    if isinstance(pipe, LIIF):
        with autocast(lr.device, config.autocast_dtype):
            return pipe.upscale(lr, size).float()
    generators = [torch.Generator().manual_seed(config.seed + index * config.samples + k) for k in range(config.samples)]
    if isinstance(pipe, IDMStyleSR):
        with autocast(lr.device, config.autocast_dtype):
            return pipe.upscale(lr.expand(config.samples, -1, -1, -1), size, generator=generators, **config.sampling)
    return pipe(lr, size=size, generator=generators, num_samples=config.samples, autocast_dtype=config.autocast_dtype, **config.sampling).images


def evaluate_image(index: int, eval_set: EvalSet, config: SrEvalConfig, models: dict[str, SrModel], lpips: LPIPS | Unavailable, device: torch.device) -> dict:
    """One image at every scale: {index, name, scales: {scale: {lr_source, sizes, methods: {method: scores}}}, grid}.

    Each method's scores include "seconds": the wall time of its upsampling call per output image."""
    image = eval_set.images[index]
    hr = load_hr(image, device)
    record = {"index": index, "name": image.name, "scales": {}, "grid": {}}
    for scale in config.scales:
        pair = make_pair(image, hr, scale, config.resize)
        size = tuple(pair.hr.shape[-2:])
        outputs, seconds = {}, {}
        for name in evaluated_methods(config, models):
            started = time.perf_counter()
            if name in models:
                upscaled = model_upscale(models[name], pair.lr, size, config, index)
            else:
                upscaled = baseline_upscale(name, pair.lr, size, config.resize)
            outputs[name] = quantize_8bit(upscaled)
            seconds[name] = (time.perf_counter() - started) / len(upscaled)
        record["scales"][scale_key(scale)] = {
            "lr_source": pair.lr_source,
            "hr_size": list(size),
            "lr_size": list(pair.lr.shape[-2:]),
            "methods": {name: {**_scores(out, pair, config.protocol, scale, config.resize, lpips), "seconds": seconds[name]} for name, out in outputs.items()},
        }
        if index < config.grid_images:
            cells = [nearest_upscale(pair.lr, size), *(out[:1] for out in outputs.values()), pair.hr]
            record["grid"][scale_key(scale)] = [centre_crop(cell[0], config.grid_crop).cpu() for cell in cells]
    return record


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summarise(records: list[dict], config: SrEvalConfig, methods: list[str], lpips: LPIPS | Unavailable) -> dict:
    """Dataset means and per-image values, per scale and method, from the gathered image records."""
    records = sorted(records, key=lambda record: record["index"])
    scales = {}
    for scale in config.scales:
        key = scale_key(scale)
        entries = [record["scales"][key] for record in records]
        sources = sorted({entry["lr_source"] for entry in entries})
        per_image = {method: {metric: [entry["methods"][method][metric] for entry in entries] for metric in entries[0]["methods"][method]} for method in methods}
        means = {method: {metric: _mean(values) for metric, values in metrics.items()} for method, metrics in per_image.items()}
        if isinstance(lpips, Unavailable):
            for method in methods:
                means[method]["lpips"] = str(lpips)
        scales[key] = {
            "settings": metric_settings(config.protocol, scale, config.resize).as_dict(),
            "lr_source": ", ".join("LR files (MATLAB bicubic)" if s == LR_FILE_SOURCE else f"synthesised ({s} bicubic)" for s in sources),
            "methods": means,
            "per_image": per_image,
            "hr_sizes": [entry["hr_size"] for entry in entries],
            "lr_sizes": [entry["lr_size"] for entry in entries],
        }
    return {"images": [record["name"] for record in records], "results": scales}


def evaluate_sr(
    eval_set: EvalSet, config: SrEvalConfig, models: dict[str, SrModel], lpips: LPIPS | Unavailable, state: PartialState, device: torch.device, progress: bool = True
) -> tuple[dict, dict[str, list[tuple[str, list[torch.Tensor]]]]] | None:
    """(results, grids) on the main process, None on the others; every process evaluates its shard."""
    methods = evaluated_methods(config, models)
    if not methods:
        raise UserError("nothing to evaluate: give a model (`models`) and/or bicubic in `baselines`")
    if not eval_set.images:
        raise UserError(f"no images to evaluate in {eval_set.root}")
    shard = range(state.process_index, len(eval_set.images), state.num_processes)
    bar = tqdm(shard, desc="eval sr", unit="image", disable=not (progress and state.is_main_process))
    records = [evaluate_image(index, eval_set, config, models, lpips, device) for index in bar]
    if state.num_processes > 1:
        records = gather_object(records)
    if not state.is_main_process:
        return None
    results = summarise(records, config, methods, lpips)
    ordered = sorted(records, key=lambda record: record["index"])
    grids = {scale_key(scale): [(record["name"], record["grid"][scale_key(scale)]) for record in ordered if record["grid"]] for scale in config.scales}
    return results, grids


def report_files(config: SrEvalConfig) -> list[str]:
    """The names `write_sr_report` writes, for the up-front overwrite check."""
    grids = [f"grid_x{scale_key(scale)}.png" for scale in config.scales] if config.grid_images else []
    return ["results.json", "report.md", "metric_vs_scale.png", *grids]


def write_sr_report(
    out: Path, run: SrRun, results: dict, grids: dict[str, list[tuple[str, list[torch.Tensor]]]], config: SrEvalConfig, methods: list[str], overwrite: bool
) -> list[Path]:
    """results.json, report.md, metric_vs_scale.png and one grid per scale; returns the paths written."""
    check_report_dir(out, report_files(config), overwrite)
    keys = [scale_key(scale) for scale in config.scales]
    per_scale = results["results"]

    def values(metric: str) -> dict[str, list]:
        """{method: value per scale} of one metric (None where not computed, the reason where unavailable)."""
        return {m: [per_scale[k]["methods"][m].get(metric) for k in keys] for m in methods}

    def unavailable(metric: str) -> str | None:
        return next((v for row in values(metric).values() for v in row if isinstance(v, str)), None)

    data = {**run.header(config), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **results}
    written = [write_json(out / "results.json", data, overwrite)]
    shown = [(metric, title) for metric, title in METRICS if any(v is not None for row in values(metric).values() for v in row)]

    subtitle = f"protocol {config.protocol}, LR by {config.resize} bicubic, {run.num_images} images"
    series = {title: values(metric) for metric, title in shown if unavailable(metric) is None}
    plot = plot_metrics_vs_scale(out / "metric_vs_scale.png", config.scales, series, subtitle, overwrite)
    written += [plot] if plot is not None else []

    columns = ["LR (nearest)", *methods, "ground truth"]
    grid_files = {}
    for key, rows in grids.items():
        if rows:
            grid = image_grid([cells for _, cells in rows], columns, [name for name, _ in rows])
            grid_files[key] = f"grid_x{key}.png"
            written.append(save_image(grid, out / grid_files[key], overwrite=overwrite))

    settings = [per_scale[k]["settings"] for k in keys]
    sampled = OURS in methods or IDM_METHOD in methods
    lines = [
        "# Super-resolution evaluation",
        "",
        "- models: "
        + (", ".join(f"{method} = {model}" for method, model in zip([m for m in methods if m not in config.baselines], run.models)) or "none (baselines only)")
        + ("; LIIF is a deterministic regression model: sampler, steps, eta, seed, samples and LR consistency do not apply to it" if LIIF_METHOD in methods else ""),
        f"- data: {run.data} (layout {run.layout}, {run.num_images} whole images, HR cropped to LR size x scale)",
        f"- protocol: {config.protocol}: channel {settings[0]['channel']}, shave " + ", ".join(f"{s['crop_border']} px at x{k}" for s, k in zip(settings, keys)),
        "- LR: " + "; ".join(f"x{k}: {per_scale[k]['lr_source']}" for k in keys),
        f"- outputs scored as 8-bit images; samples per input: {config.samples}"
        + (f"; sampler {run.sampler}, {run.steps} steps, eta {run.eta}, seed {config.seed}" if sampled else "")
        + (f"; strength {run.strength}, LR consistency {'on' if run.lr_consistency else 'off'}" if sampled and run.strength is not None else ""),
        f"- command: `{run.command}`",
        f"- date: {data['date']}",
        "",
    ]
    for metric, title in shown:
        spec = {"psnr": ".2f", "lr_consistency": ".3e", "seconds": ".3f"}.get(metric, ".4f")
        rows = [[m, *(format_value(v, spec) for v in row)] for m, row in values(metric).items()]
        lines += [f"## {title}", "", markdown_table(["method", *(f"x{k}" for k in keys)], rows), ""]
        reason = unavailable(metric)
        lines += [reason, ""] if reason is not None else []
    if plot is not None:
        lines += ["## Metrics vs scale", "", "![metrics vs scale](metric_vs_scale.png)", ""]
    if grid_files:
        lines += ["## Image grids", "", f"Centre crops (at most {config.grid_crop} px) at 1:1, columns: " + " | ".join(columns), ""]
        lines += [f"### x{key}\n\n![grid x{key}]({name})\n" for key, name in grid_files.items()]
    written.append(write_text(out / "report.md", "\n".join(lines), overwrite))
    return written
