"""Steps vs quality: PSNR-Y/SSIM and seconds per image of one SR model under several samplers and step counts.

The protocol is `arbiscale eval sr`'s, by reusing its code (`arbiscale.evaluation.sr.evaluate_image` and
`summarise`): whole evaluation photos, LR synthesised by the chosen bicubic, outputs clamped and
rounded to 8 bits, PSNR/SSIM by the named protocol (default liif-benchmark: Y channel, shave = scale),
and image i drawn with seed S + i at every setting, so settings differ only in the sampler. A setting
is SAMPLER:STEPS[:ETA] (eta for ddim only; ddim without one uses eta 1, as the CLI does). Default: the
paper's DDIM-200 (eta 1), the CLI default DDIM-50 (eta 1), DPM-Solver++ and UniPC at 10, 20 and 50
steps, and deterministic DDIM (eta 0) at 20 and 50; differences are reported against the first one.

Images run in the outer loop and settings in the inner one, so load changes on a shared machine fall
on all settings alike. "s/image" times the pipeline call (encode, sample, decode; after one warm-up
call), not the scoring. A setting is on the speed/quality front ("front") when no other setting is both
at least as fast and at least as good in PSNR-Y; the suggested default is the fastest setting within
--tolerance-db of the best PSNR-Y. Results are rewritten after every image, so a stopped run keeps them.

    python benchmarks/sampler_quality.py --data /work/corpus-512 --split /work/corpus-512/val.txt \\
        --max-images 6 --scales 4 --threads 1 --out BENCH_DIR
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from arbiscale.cli.inference_options import add_upscale_options, device_and_dtype, load_pipeline, sampling_settings, upscale_settings
from arbiscale.data.eval_sets import LAYOUTS, open_eval_set
from arbiscale.errors import UserError
from arbiscale.evaluation.report import check_report_dir, format_value, markdown_table, plot_metrics_vs_scale, write_json, write_text
from arbiscale.evaluation.sr import OURS, SrEvalConfig, evaluate_image, scale_key, summarise
from arbiscale.metrics import PROTOCOLS, RESIZE_METHODS, load_lpips
from arbiscale.pipelines import UpscalePipeline, bundled_model_dir
from common import cpu_name  # benchmarks/, the script's folder

DEFAULT_SETTINGS = ("ddim:200:1", "ddim:50:1", "dpm-solver++:10", "dpm-solver++:20", "dpm-solver++:50", "unipc:10", "unipc:20", "unipc:50", "ddim:20:0", "ddim:50:0")
REPORT_FILES = ("results.json", "report.md", "psnr_vs_steps.png")
BICUBIC = "bicubic"


@dataclass(frozen=True)
class Setting:
    sampler: str
    steps: int
    eta: float | None

    @classmethod
    def parse(cls, text: str) -> Setting:
        """SAMPLER:STEPS[:ETA], checked by the CLI's own option parser."""
        sampler, _, rest = text.partition(":")
        steps, _, eta = rest.partition(":")
        if not steps:
            raise UserError(f"setting {text!r} has no step count: give SAMPLER:STEPS[:ETA], e.g. dpm-solver++:20 or ddim:200:1")
        options = sampling_settings(argparse.Namespace(sampler=sampler, steps=steps or None, eta=eta or None))
        return cls(sampler, options["num_inference_steps"], UpscalePipeline.resolve_eta(sampler, options["eta"]))

    @property
    def family(self) -> str:
        """The sampler with its eta: one curve of the plot."""
        return self.sampler if self.eta is None else f"{self.sampler} (eta {self.eta:g})"

    @property
    def label(self) -> str:
        return f"{self.sampler}-{self.steps}" + ("" if self.eta is None else f" (eta {self.eta:g})")

    def sampling(self) -> dict:
        return {"sampler": self.sampler, "num_inference_steps": self.steps, "eta": self.eta}


def seconds_text(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


class TimedPipeline:
    """Calls the pipeline and records each call's wall time (evaluate_image makes one call per scale)."""

    def __init__(self, pipe: UpscalePipeline) -> None:
        self.pipe = pipe
        self.seconds: list[float] = []

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        result = self.pipe(*args, **kwargs)
        if self.pipe.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - start)
        return result


def front(rows: list[dict]) -> set[str]:
    """Labels of the rows that no other row beats on both PSNR-Y and seconds (ties do not beat)."""

    def beats(a: dict, b: dict) -> bool:
        return a["psnr"] >= b["psnr"] and a["seconds"] <= b["seconds"] and (a["psnr"] > b["psnr"] or a["seconds"] < b["seconds"])

    return {b["label"] for b in rows if not any(beats(a, b) for a in rows)}


def suggestion(rows: list[dict], tolerance_db: float) -> dict:
    """The fastest row within `tolerance_db` of the best PSNR-Y."""
    best = max(row["psnr"] for row in rows)
    return min((row for row in rows if row["psnr"] >= best - tolerance_db), key=lambda row: row["seconds"])


def summary(settings: list[Setting], records: dict, configs: dict, lpips, tolerance_db: float) -> dict:
    """Per scale: bicubic and every setting's dataset means, seconds per image, front and suggestion."""
    done = len(records[BICUBIC])
    bicubic = summarise(records[BICUBIC], configs[BICUBIC], [BICUBIC], lpips)
    ours = {s: summarise(records[s], configs[s], [OURS], lpips) for s in settings}
    per_scale = {}
    for scale in configs[BICUBIC].scales:
        key = scale_key(scale)
        rows = []
        for setting, result in ours.items():
            seconds = [record["seconds"][key] for record in records[setting]]
            means = result["results"][key]["methods"][OURS]
            rows.append(
                {
                    "label": setting.label,
                    "sampler": setting.sampler,
                    "steps": setting.steps,
                    "eta": setting.eta,
                    "psnr": means["psnr"],
                    "ssim": means["ssim"],
                    "lr_consistency": means["lr_consistency"],
                    "seconds": sum(seconds) / len(seconds),
                    "seconds_min": min(seconds),
                    "per_image": {**result["results"][key]["per_image"][OURS], "seconds": seconds},
                }
            )
        on_front = front(rows)
        for row in rows:
            row["front"] = row["label"] in on_front
        per_scale[key] = {
            "settings": bicubic["results"][key]["settings"],
            "lr_source": bicubic["results"][key]["lr_source"],
            "bicubic": {m: v for m, v in bicubic["results"][key]["methods"][BICUBIC].items() if m != "lpips"},
            "samplers": rows,
            "suggested": suggestion(rows, tolerance_db)["label"],
            "seconds_all_settings": sum(row["seconds"] for row in rows),
        }
    return {"completed_images": done, "images": bicubic["images"], "results": per_scale}


def markdown(header: dict, results: dict, tolerance_db: float) -> str:
    lines = [
        "# Steps vs quality: choosing the default sampler",
        "",
        f"- model: {header['model']}",
        f"- data: {header['data']} ({results['completed_images']} of {header['num_images']} images: {', '.join(results['images'])})",
        (f"- protocol {header['protocol']}, LR by {header['resize']} bicubic, seed {header['seed']} (image i: seed + i at every setting), {header['dtype']} on {header['device']}"),
        f"- machine: {header['cpu']}, torch threads: {header['threads']}, torch {header['torch']}, {header['date']}",
        f"- command: `{header['command']}`",
        "",
    ]
    for key, entry in results["results"].items():
        rows = entry["samplers"]
        reference = rows[0] if rows else None
        table = []
        for row in rows:
            table.append(
                [
                    row["label"],
                    str(row["steps"]),
                    f"{row['psnr']:.2f}",
                    f"{row['psnr'] - reference['psnr']:+.2f}",
                    f"{row['ssim']:.4f}",
                    format_value(row["lr_consistency"], ".2e"),
                    seconds_text(row["seconds"]),
                    f"{reference['seconds'] / row['seconds']:.1f}x",
                    "yes" if row["front"] else "",
                ]
            )
        bicubic = entry["bicubic"]
        table.append(
            [
                BICUBIC,
                "-",
                f"{bicubic['psnr']:.2f}",
                f"{bicubic['psnr'] - reference['psnr']:+.2f}" if reference else "-",
                f"{bicubic['ssim']:.4f}",
                format_value(bicubic["lr_consistency"], ".2e"),
                "-",
                "-",
                "",
            ]
        )
        versus = reference["label"] if reference else "-"
        lines += [
            f"## x{key} (shave {entry['settings']['crop_border']} px, channel {entry['settings']['channel']})",
            "",
            markdown_table(["setting", "steps", "PSNR-Y (dB)", f"vs {versus}", "SSIM", "LR consistency (MSE)", "s/image", f"speed vs {versus}", "front"], table),
            "",
            (
                f"Suggested (fastest within {tolerance_db:g} dB of the best PSNR-Y): **{entry['suggested']}**. "
                f"All settings together: {seconds_text(entry['seconds_all_settings'])} s per image."
            ),
            "",
        ]
    return "\n".join(lines)


def plot(path: Path, settings: list[Setting], results: dict, header: dict) -> Path | None:
    """PSNR-Y, SSIM and s/image against steps, one curve per sampler (bicubic is in the table: as a line it would
    flatten the curves), drawn by eval sr's plot helper."""
    steps = sorted({setting.steps for setting in settings})
    series = {}
    for key, entry in results["results"].items():
        for metric, title in (("psnr", "PSNR-Y (dB)"), ("ssim", "SSIM"), ("seconds", "s/image")):
            curves: dict[str, list[float | None]] = {}
            for row, setting in zip(entry["samplers"], settings):
                curves.setdefault(setting.family, [None] * len(steps))[steps.index(setting.steps)] = row[metric]
            series[f"{title}, x{key}"] = curves
    subtitle = f"{header['protocol']}, {results['completed_images']} images, {header['dtype']}, {header['threads']} threads"
    return plot_metrics_vs_scale(path, steps, series, subtitle, overwrite=True, xlabel="sampling steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="saved UpscalePipeline folder (default: the bundled model)")
    parser.add_argument("--data", required=True, help="evaluation images, as for `arbiscale eval sr --data`")
    parser.add_argument("--split", help="text file listing the images to use, relative to --data")
    parser.add_argument("--layout", default="auto", help=f"auto or one of {', '.join(LAYOUTS)}")
    parser.add_argument("--max-images", type=int, help="only the first N images (sorted by name)")
    parser.add_argument("--scales", type=float, nargs="+", default=[4.0])
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), help="SAMPLER:STEPS[:ETA] ...; the first is the reference")
    parser.add_argument("--protocol", default="liif-benchmark", choices=PROTOCOLS)
    parser.add_argument("--resize", default="matlab", choices=RESIZE_METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 network precision (default fp32, as eval sr)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_upscale_options(parser)
    parser.add_argument("--tolerance-db", type=float, default=0.1, help="PSNR-Y loss accepted for the suggested default")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, report.md and psnr_vs_steps.png")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = list(dict.fromkeys(Setting.parse(text) for text in args.settings))
    device, dtype = device_and_dtype(args)
    scales = tuple(dict.fromkeys(args.scales))
    base = {"scales": scales, "protocol": args.protocol, "resize": args.resize, "seed": args.seed, "autocast_dtype": dtype, "grid_images": 0}
    configs = {BICUBIC: SrEvalConfig(**base, baselines=(BICUBIC,))}
    configs |= {s: SrEvalConfig(**base, baselines=(), sampling=s.sampling() | upscale_settings(args)) for s in settings}
    check_report_dir(args.out, REPORT_FILES, args.overwrite)
    eval_set = open_eval_set(args.data, args.layout, args.split, args.max_images)
    if not eval_set.images:
        raise UserError(f"no images to evaluate in {args.data}")
    lpips = load_lpips(None, None)
    pipe = load_pipeline(UpscalePipeline, args.model, device, progress=False)
    timed = TimedPipeline(pipe)
    header = {
        "benchmark": "sampler_quality",
        "command": shlex.join(["python", "benchmarks/sampler_quality.py", *(sys.argv[1:] if argv is None else argv)]),
        "model": str(Path(args.model).resolve()) if args.model else f"bundled ({bundled_model_dir('sr')})",
        "data": str(Path(args.data).resolve()),
        "split": str(Path(args.split).resolve()) if args.split else None,
        "layout": eval_set.layout,
        "num_images": len(eval_set.images),
        "protocol": args.protocol,
        "resize": args.resize,
        "scales": list(scales),
        "seed": args.seed,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "tolerance_db": args.tolerance_db,
        **upscale_settings(args),
    }

    warm = Setting("dpm-solver++", 1, None)
    evaluate_image(0, eval_set, SrEvalConfig(**{**base, "scales": scales[:1]}, sampling=warm.sampling()), {OURS: pipe}, lpips, device)
    records: dict = {key: [] for key in configs}
    text = ""
    for index, image in enumerate(eval_set.images):
        records[BICUBIC].append(evaluate_image(index, eval_set, configs[BICUBIC], {}, lpips, device))
        for setting in settings:
            timed.seconds.clear()
            record = evaluate_image(index, eval_set, configs[setting], {OURS: timed}, lpips, device)
            record["seconds"] = {scale_key(scale): seconds for scale, seconds in zip(scales, timed.seconds)}
            records[setting].append(record)
            for key, seconds in record["seconds"].items():
                psnr = record["scales"][key]["methods"][OURS]["psnr"]
                print(f"[{index + 1}/{len(eval_set.images)}] {image.name} x{key} {setting.label}: PSNR-Y {psnr:.2f} dB, {seconds_text(seconds)} s", flush=True)
        results = summary(settings, records, configs, lpips, args.tolerance_db)
        text = markdown(header, results, args.tolerance_db)
        write_json(args.out / "results.json", {**header, "settings": [s.label for s in settings], **results}, overwrite=True)
        write_text(args.out / "report.md", text, overwrite=True)
    plot(args.out / "psnr_vs_steps.png", settings, results, header)
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        sys.exit(f"sampler_quality.py: error: {error}")
