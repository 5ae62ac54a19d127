"""The implicit decoder against exact vector renders: what a photo set cannot measure.

Each image's render at the input side is encoded once and decoded at every larger side on disk
(`ROOT/<side>/<name>`, scripts/build_vector_set.py). Scored against the exact render at that side
(RGB PSNR and SSIM of the 8-bit images, no shave), beside two bicubic upscales:
- "decode + bicubic": the decode at the input side, resized. What a generator without an
  arbitrary-size decoder offers (sample at the training size, then resize), so it is the baseline an
  arbitrary-size render must beat;
- "bicubic": the exact input render, resized: super-resolution from a perfect input, which a decoder
  that sees only the latent (a lossy code of that input) can beat only by knowing the domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.images import image_to_tensor, load_image, resize, save_image
from ..metrics import psnr, quantize_8bit, ssim
from ..models.autoencoder import ImplicitAutoencoder
from .report import centre_crop, check_report_dir, format_value, image_grid, markdown_table, plot_metrics_vs_scale, write_json, write_text

REPORT_FILES = ("results.json", "report.md", "psnr_vs_scale.png", "grid.png")
METHODS = ("decoder", "decode + bicubic", "bicubic")


@dataclass(frozen=True)
class RenderEvalConfig:
    input_side: int
    sides: tuple[int, ...]  # the target sides, each larger than input_side
    grid_images: int = 3
    grid_crop: int = 128
    decode_chunk: int = 65536


def evaluate_renders(autoencoder: ImplicitAutoencoder, root: Path, names: list[str], config: RenderEvalConfig, progress: bool = True) -> tuple[dict, list[list[torch.Tensor]]]:
    """({side: {method: {psnr, ssim}}} means over images, plus per image, and the grid rows at the largest side."""
    device = next(autoencoder.parameters()).device
    scores = {side: {method: {"psnr": [], "ssim": []} for method in METHODS} for side in config.sides}
    rows = []
    for index, name in enumerate(tqdm(names, desc="eval renders", unit="image", disable=not progress)):
        image = image_to_tensor(load_image(root / str(config.input_side) / name))[None].to(device)
        with torch.no_grad():
            latent = autoencoder.encode(image)
            small = autoencoder.decode(latent, image.shape[-2:], config.decode_chunk).clamp(-1, 1)
        for side in config.sides:
            exact = image_to_tensor(load_image(root / str(side) / name))[None].to(device)
            with torch.no_grad():
                decoded = autoencoder.decode(latent, (side, side), config.decode_chunk).clamp(-1, 1)
            outputs = {
                "decoder": quantize_8bit(decoded),
                "decode + bicubic": quantize_8bit(resize(quantize_8bit(small), (side, side))),
                "bicubic": quantize_8bit(resize(image, (side, side))),
            }
            for method, output in outputs.items():
                scores[side][method]["psnr"].append(psnr(output, exact).item())
                scores[side][method]["ssim"].append(ssim(output, exact).item())
            if side == config.sides[-1] and index < config.grid_images:
                rows.append([centre_crop(cell[0].cpu(), config.grid_crop) for cell in (*outputs.values(), exact)])
    results = {
        str(side): {
            method: {metric: sum(values) / len(values) for metric, values in metrics.items()} | {"per_image_psnr": metrics["psnr"]} for method, metrics in by_method.items()
        }
        for side, by_method in scores.items()
    }
    return results, rows


def write_renders_report(out: Path, header: dict, results: dict, rows: list[list[torch.Tensor]], config: RenderEvalConfig, overwrite: bool) -> list[Path]:
    """results.json, report.md, psnr_vs_scale.png and grid.png; returns the paths written."""
    check_report_dir(out, REPORT_FILES, overwrite)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    written = [write_json(out / "results.json", {**header, "date": date, "results": results}, overwrite)]
    scales = [side / config.input_side for side in config.sides]
    series = {metric.upper(): {method: [results[str(side)][method][metric] for side in config.sides] for method in METHODS} for metric in ("psnr", "ssim")}
    plot = plot_metrics_vs_scale(out / "psnr_vs_scale.png", scales, series, f"{header['num_images']} images, {config.input_side} px inputs", overwrite)
    written += [plot] if plot is not None else []
    table = []
    for side, scale in zip(config.sides, scales):
        scores = results[str(side)]
        table.append(
            [
                f"{side}",
                f"{scale:g}",
                *(format_value(scores[method]["psnr"], ".2f") for method in METHODS),
                format_value(scores["decoder"]["psnr"] - scores["decode + bicubic"]["psnr"], "+.2f"),
                *(format_value(scores[method]["ssim"]) for method in METHODS),
            ]
        )
    lines = [
        "# Decoder against exact renders",
        "",
        f"- model: {header['model']}",
        f"- {header['num_images']} images of {header['renders']} ({header['split']}); input: the exact render at "
        f"{config.input_side} px, encoded once; decoder: that latent decoded at each side; decode + bicubic: the decode at "
        f"{config.input_side} px upscaled (render at the training size, then resize); bicubic: the exact input upscaled",
        "- scores against the exact render at each side, 8-bit RGB, no shave; gain: decoder over decode + bicubic",
        f"- command: `{header['command']}`",
        f"- date: {date}",
        "",
        markdown_table(["side", "scale", *(f"PSNR {method}" for method in METHODS), "gain", *(f"SSIM {method}" for method in METHODS)], table),
        "",
    ]
    if plot is not None:
        lines += ["![PSNR vs scale](psnr_vs_scale.png)", ""]
    if rows:
        side = config.sides[-1]
        grid = image_grid(rows, [*METHODS, f"exact {side}"], [f"image {i}" for i in range(len(rows))])
        written.append(save_image(grid, out / "grid.png", overwrite=overwrite))
        lines += [f"Centre crops ({config.grid_crop} px) at {side} px: {', '.join(METHODS)}, exact render.", "", "![grid](grid.png)", ""]
    written.insert(1, write_text(out / "report.md", "\n".join(lines), overwrite))
    return written
