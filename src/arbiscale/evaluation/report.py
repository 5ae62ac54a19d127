"""Report files: refuse-to-overwrite checks, atomic writes, markdown tables, plots and image grids.

matplotlib is optional (the "plots" extra): without it a plot is skipped with a one-line notice and
everything else is still written.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..data.images import tensor_to_image, write_atomic
from ..errors import UserError

LABEL_HEIGHT = 18
GAP = 4


def check_report_dir(folder: Path, names: Sequence[str], overwrite: bool) -> None:
    """Refuse up front, before any work, when a report file already exists and `overwrite` is off."""
    nearest = next(path for path in (folder, *folder.parents) if path.exists())
    if not nearest.is_dir():
        raise UserError(f"`out` {folder}: {nearest} is a file: give a folder for the report")
    existing = [name for name in names if (folder / name).exists()]
    if existing and not overwrite:
        more = f" (+{len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{folder / existing[0]}{more} already exists: pass `overwrite` to replace the report, or choose another `out`")


def write_text(path: Path, text: str, overwrite: bool) -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")), overwrite)


def write_json(path: Path, data: dict, overwrite: bool) -> Path:
    return write_text(path, json.dumps(data, indent=2, allow_nan=True) + "\n", overwrite)


def format_value(value: object, spec: str = ".4f") -> str:
    """A table cell: numbers rounded, inf kept, unavailable metrics as the word."""
    if isinstance(value, str):
        return "unavailable" if value.startswith("unavailable") else value
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None (with a notice) when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install 'arbiscale[plots]')", file=sys.stderr)
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path: Path, overwrite: bool) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    figure.clf()
    return write_atomic(path, lambda handle: handle.write(buffer.getvalue()), overwrite)


def plot_metrics_vs_scale(
    path: Path, scales: Sequence[float], series: dict[str, dict[str, list[float | None]]], subtitle: str, overwrite: bool, xlabel: str = "scale"
) -> Path | None:
    """One panel per metric ({metric: {method: value per scale}}), x = scale (log axis; any other positive
    quantity, such as sampling steps, with its `xlabel`); None when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.6), squeeze=False, layout="constrained")
    for axis, (metric, methods) in zip(axes[0], series.items()):
        for method, values in methods.items():
            points = [(s, v) for s, v in zip(scales, values) if v is not None and math.isfinite(v)]
            if points:
                axis.plot(*zip(*points), marker="o", label=method)
        axis.set_xscale("log")
        axis.set_xticks(list(scales), [f"{s:g}" for s in scales])
        axis.minorticks_off()
        axis.set_xlabel(xlabel)
        axis.set_title(metric)
        axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(subtitle, fontsize=9)
    try:
        return _save_figure(figure, path, overwrite)
    finally:
        plt.close(figure)


def plot_matrix(path: Path, labels: Sequence[str], matrix: list[list[float]], title: str, overwrite: bool) -> Path | None:
    """A heatmap of a square matrix with its values written in the cells; None when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return None
    size = len(labels)
    figure, axis = plt.subplots(figsize=(1.2 * size + 2.2, 1.2 * size + 1.2), layout="constrained")
    low = min(min(row) for row in matrix)
    image = axis.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis")
    axis.set_xticks(range(size), labels, rotation=45)
    axis.set_yticks(range(size), labels)
    for i in range(size):
        for j in range(size):
            dark = low < 1 and (matrix[i][j] - low) / (1 - low) < 0.5  # the lower half of viridis is dark
            axis.text(j, i, f"{matrix[i][j]:.3f}", ha="center", va="center", color="white" if dark else "black")
    figure.colorbar(image, ax=axis)
    axis.set_title(title, fontsize=9)
    try:
        return _save_figure(figure, path, overwrite)
    finally:
        plt.close(figure)


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central (at most size x size) region of (..., H, W) images, so grid cells show pixels 1:1."""
    height, width = images.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return images[..., top : top + size, left : left + size]


def nearest_upscale(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel replication to `size`: how the LR input looks at the output size, without any interpolation."""
    return F.interpolate(images, size=size, mode="nearest-exact")


def image_grid(rows: Sequence[Sequence[torch.Tensor]], column_labels: Sequence[str], row_labels: Sequence[str]) -> Image.Image:
    """Cells (3,H,W) in [-1, 1] on a white canvas, each column as wide as its widest cell, labelled above
    (columns) and on the cell's first line (rows)."""
    widths = [max(row[c].shape[-1] for row in rows) for c in range(len(column_labels))]
    heights = [max(cell.shape[-2] for cell in row) for row in rows]
    canvas = Image.new("RGB", (sum(widths) + GAP * (len(widths) - 1), LABEL_HEIGHT + sum(heights) + GAP * len(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for label, width in zip(column_labels, widths):
        draw.text((x + 2, 3), label, fill="black")
        x += width + GAP
    y = LABEL_HEIGHT
    for row, label, height in zip(rows, row_labels, heights):
        x = 0
        for cell, width in zip(row, widths):
            canvas.paste(tensor_to_image(cell), (x, y))
            x += width + GAP
        draw.text((3, y + 2), label, fill="yellow", stroke_width=1, stroke_fill="black")
        y += height + GAP
    return canvas
