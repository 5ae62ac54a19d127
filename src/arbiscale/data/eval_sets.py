"""Evaluation sets as users have them on disk, turned into deterministic (HR, LR) pairs of whole images.

Layouts (`open_eval_set(root, layout="auto")` detects them in this order):
- "split": any folder plus a split file (`--split FILE`, one image path relative to the folder a line),
  as CelebA-HQ / FFHQ / LSUN folders are shipped. LR synthesised.
- "div2k": `root/DIV2K_valid_HR/0801.png` and, when present, `root/DIV2K_valid_LR_bicubic/X2/0801x2.png`
  (X2..X4; `root` may also be the DIV2K_valid_HR folder itself).
- "benchmark": the EDSR benchmark layout of one set, `root/HR/baby.png` and
  `root/LR_bicubic/X2/babyx2.png` (Set5, Set14, B100, Urban100; pass `benchmark/Set5`, not `benchmark`).
- "folder": every image under `root` (recursive, sorted). LR synthesised.

Pairs (`make_pair`): at scale s the LR side is l = floor(side / s) and the HR is cropped, top-left, to
round(l * s) (the output size the pipelines produce for l at scale s) -- the usual "modcrop" for integer
scales, and LIIF's rule for the others. The LR is the given file when the layout has one for that
(integer) scale, with the HR cropped to its size x s; otherwise it is synthesised from the cropped HR
with the named bicubic (`arbiscale.metrics.synthesize_lr`: resize, then 8-bit rounding).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..choices import EVAL_LAYOUTS as LAYOUTS
from ..errors import UserError
from ..geometry import format_size, scaled_size
from ..metrics import synthesize_lr
from .images import IMAGE_EXTENSIONS, image_to_tensor, list_images, load_image

LR_FILE_SOURCE = "file"

_DIV2K_HR = "DIV2K_valid_HR"
_DIV2K_LR = "DIV2K_valid_LR_bicubic"
_SCALE_FOLDER = re.compile(r"^X(\d+)$")


@dataclass(frozen=True)
class EvalImage:
    """One ground-truth image and the LR files the layout provides for it, by integer scale."""

    name: str
    hr_path: Path
    lr_paths: dict[int, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalPair:
    """A ground truth (1,3,H,W) and its LR input (1,3,h,w), both in [-1, 1]; `lr_source` is "file" or the
    resize method that synthesised the LR."""

    name: str
    hr: torch.Tensor
    lr: torch.Tensor
    lr_source: str


@dataclass(frozen=True)
class EvalSet:
    """The images of one evaluation set, sorted by name, and the layout they were found in."""

    root: Path
    layout: str
    images: list[EvalImage]


def _lr_files(folder: Path, stems: list[str]) -> dict[str, dict[int, Path]]:
    """{HR stem: {scale: LR file}} from `folder/X<s>/<stem>x<s>.<ext>`."""
    found: dict[str, dict[int, Path]] = {stem: {} for stem in stems}
    if not folder.is_dir():
        return found
    for scale_dir in sorted(folder.iterdir()):
        match = _SCALE_FOLDER.match(scale_dir.name)
        if not match or not scale_dir.is_dir():
            continue
        scale = int(match.group(1))
        files = {p.stem: p for p in scale_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()}
        for stem in stems:
            lr = files.get(f"{stem}x{scale}")
            if lr is not None:
                found[stem][scale] = lr
    return found


def _paired(hr_folder: Path, lr_folder: Path) -> list[EvalImage]:
    paths = [p for p in list_images(hr_folder) if p.parent == hr_folder]
    if not paths:
        raise UserError(f"no images directly inside {hr_folder}: put the ground-truth images there")
    lr = _lr_files(lr_folder, [p.stem for p in paths])
    return [EvalImage(p.name, p, lr[p.stem]) for p in paths]


def _benchmark_sets(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "HR").is_dir())


def detect_layout(root: Path, split_file: Path | None = None) -> str:
    """The layout of `root` (see the module docstring)."""
    if split_file is not None:
        return "split"
    if (root / _DIV2K_HR).is_dir() or (root.name == _DIV2K_HR and (root.parent / _DIV2K_LR).is_dir()):
        return "div2k"
    if (root / "HR").is_dir():
        return "benchmark"
    return "folder"


def open_eval_set(root: str | Path, layout: str = "auto", split_file: str | Path | None = None, max_images: int | None = None) -> EvalSet:
    """The images of an evaluation set, sorted by name (the first `max_images` when given)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist: pass the folder that holds the evaluation images")
    if layout != "auto" and layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}: choose auto or one of {', '.join(LAYOUTS)}")
    split = Path(split_file) if split_file is not None else None
    if layout == "auto":
        layout = detect_layout(root, split)
    if layout == "split" and split is None:
        raise UserError("`layout` split needs a `split_file` listing the images, one path relative to the data folder a line")
    if layout != "split" and split is not None:
        raise UserError(f"`split_file` goes with `layout` split (or auto), not {layout}: drop one of them")
    if layout == "split":
        images = [EvalImage(p.relative_to(root).as_posix(), p) for p in list_images(root, split)]
    elif layout == "folder":
        sets = _benchmark_sets(root)
        if sets:
            raise UserError(f"{root} holds several benchmark sets ({', '.join(sets)}): pass one of them, e.g. `root` {root / sets[0]}")
        images = [EvalImage(p.relative_to(root).as_posix(), p) for p in list_images(root)]
    elif layout == "div2k":
        base = root.parent if root.name == _DIV2K_HR else root
        if not (base / _DIV2K_HR).is_dir():
            raise UserError(f"no {_DIV2K_HR} folder in {base}: pass the folder that holds DIV2K_valid_HR")
        images = _paired(base / _DIV2K_HR, base / _DIV2K_LR)
    else:
        if not (root / "HR").is_dir():
            raise UserError(f"no HR folder in {root}: the benchmark layout is SET/HR/*.png and SET/LR_bicubic/X<s>/*x<s>.png")
        images = _paired(root / "HR", root / "LR_bicubic")
    if max_images is not None:
        images = images[:max_images]
    return EvalSet(root, layout, images)


def pair_sizes(hr_size: tuple[int, int], scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """(HR crop, LR size) for a synthesised pair at `scale` (see the module docstring)."""
    lr_size = tuple(math.floor(side / scale + 1e-9) for side in hr_size)
    if min(lr_size) < 1:
        raise UserError(f"a {format_size(hr_size)} image is too small for scale {scale:g}: drop that scale or use larger images")
    return scaled_size(lr_size, scale), lr_size


def make_pair(image: EvalImage, hr: torch.Tensor, scale: float, resize: str) -> EvalPair:
    """The (HR, LR) pair of `image` at `scale`; `hr` is its loaded ground truth (1,3,H,W)."""
    hr_size = tuple(hr.shape[-2:])
    lr_path = image.lr_paths.get(round(scale)) if float(scale).is_integer() else None
    if lr_path is not None:
        lr = image_to_tensor(load_image(lr_path)).unsqueeze(0).to(hr.device)
        crop = scaled_size(tuple(lr.shape[-2:]), scale)
        if crop[0] > hr_size[0] or crop[1] > hr_size[1]:
            raise UserError(
                f"LR file {lr_path} ({lr.shape[-2]}x{lr.shape[-1]}) times {scale:g} is larger than its HR image "
                f"{image.hr_path} ({format_size(hr_size)}): the files do not belong together"
            )
        return EvalPair(image.name, hr[..., : crop[0], : crop[1]], lr, LR_FILE_SOURCE)
    crop, lr_size = pair_sizes(hr_size, scale)
    cropped = hr[..., : crop[0], : crop[1]]
    return EvalPair(image.name, cropped, synthesize_lr(cropped, lr_size, resize), resize)


def load_hr(image: EvalImage, device: torch.device | None = None) -> torch.Tensor:
    """The ground truth of `image` as (1,3,H,W) in [-1, 1]."""
    return image_to_tensor(load_image(image.hr_path)).unsqueeze(0).to(device)
