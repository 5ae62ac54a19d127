"""Image files in and out: every odd file a user may have becomes 8-bit RGB or a one-line UserError.

Tensors follow the project convention, (3, H, W) or (B, 3, H, W) float in [-1, 1].
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError, notify
from ..files import write_atomic
from ..geometry import resize  # noqa: F401  (the clamped antialiased resize, used with images everywhere)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# 16384 x 16384: far above any photo we train on, small enough that a crafted file cannot exhaust memory.
MAX_IMAGE_PIXELS = 16384 * 16384
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

# Transparent pixels are shown on white by viewers and browsers, so training sees them that way too.
_BACKGROUND = (255, 255, 255)


def list_images(root: str | Path, split_file: str | Path | None = None) -> list[Path]:
    """Image files under `root` (recursive, sorted), or the ones a split file names relative to `root`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist: pass a folder that holds the images")
    if split_file is not None:
        return _read_split(root, Path(split_file))
    unreadable: list[str] = []
    found = []
    for folder, _, files in os.walk(root, onerror=lambda error: unreadable.append(f"{error.filename} ({error.strerror})")):
        found += [Path(folder) / name for name in files]
    paths = sorted((p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    for folder in unreadable:
        notify(f"skipped the folder {folder}: its images cannot be listed; fix its permissions to include them")
    if not paths:
        raise UserError(f"no images in {root}: expected files ending in {', '.join(IMAGE_EXTENSIONS)}")
    return paths


def _read_split(root: Path, split_file: Path) -> list[Path]:
    """A split file lists paths relative to the image folder, one a line; blank lines and '#' comments skipped."""
    if not split_file.is_file():
        raise UserError(f"split file {split_file} does not exist: pass a text file listing image paths, one a line")
    try:
        names = [line.strip() for line in split_file.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise UserError(f"split file {split_file} is not UTF-8 text: save it as UTF-8, one image path a line") from None
    names = [name for name in names if name and not name.startswith("#")]
    if not names:
        raise UserError(f"split file {split_file} lists no images: write one image path (relative to {root}) a line")
    paths = [root / name for name in names]
    missing = [name for name, path in zip(names, paths) if not path.is_file()]
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"split file {split_file} names {missing[0]}{more}, not found under {root}: fix the list or the folder")
    return paths


def _open(path: str | Path) -> Image.Image:
    """Decode the whole file upright (EXIF orientation applied), turning every failure into a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist: check the path")
    if path.stat().st_size == 0:
        raise UserError(f"image {path} is empty (0 bytes): replace or remove the file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"image {path} is larger than {MAX_IMAGE_PIXELS} pixels, too big to decode safely: downscale it first") from None
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image Pillow can read: remove it or convert it to PNG/JPEG") from None
    except PermissionError:
        raise UserError(f"image {path} cannot be read (permission denied): fix its permissions or run as a user who may read it") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"image {path} is truncated or corrupt ({error}): replace or remove the file") from None
    return image


def _full_scale(mode: str, values: np.ndarray) -> float:
    """The white level of a high-bit-depth grayscale image.

    16-bit modes are 0..65535; 32-bit integer ("I", how some 16-bit files open) and float ("F") do not
    say their range, so it is read from the data: floats up to 1 are unit range, values above 255 16-bit.
    """
    top = float(values.max(initial=0))
    if mode.startswith("I;16") or top > 255:
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    return 255.0


def _split_alpha(image: Image.Image, path: Path) -> tuple[Image.Image, Image.Image | None]:
    """8-bit RGB and, when the file has transparency, its 8-bit alpha (L)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.round(values * (255.0 / _full_scale(image.mode, values))), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB"), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    try:
        if has_alpha:
            rgba = image.convert("RGBA")
            return rgba.convert("RGB"), rgba.getchannel("A")
        return image.convert("RGB"), None
    except (ValueError, OSError) as error:
        raise UserError(f"image {path} has colour mode {image.mode}, which cannot be converted to RGB ({error}): save it as RGB") from None


def load_image(path: str | Path) -> Image.Image:
    """RGB image for training and metrics; transparency is composited on white."""
    rgb, alpha = _split_alpha(_open(path), Path(path))
    if alpha is None:
        return rgb
    background = Image.new("RGB", rgb.size, _BACKGROUND)
    background.paste(rgb, mask=alpha)
    return background


def load_image_with_alpha(path: str | Path) -> tuple[Image.Image, Image.Image | None]:
    """RGB (uncomposited colours) and alpha or None, so inference can upscale and re-attach the alpha."""
    return _split_alpha(_open(path), Path(path))


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> (3, H, W) float32 in [-1, 1]."""
    array = np.asarray(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) in [-1, 1] -> 8-bit RGB PIL image (clamped and rounded)."""
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected an image tensor (3, H, W) or (1, 3, H, W), got shape {tuple(tensor.shape)}")
    array = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def save_image(image: Image.Image | torch.Tensor, path: str | Path, overwrite: bool = False) -> Path:
    """Save atomically (see `write_atomic`), in the format the file name's extension names."""
    path = Path(path)
    if isinstance(image, torch.Tensor):
        image = tensor_to_image(image)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise UserError(f"cannot tell the image format of {path}: use a name ending in .png, .jpg, .webp, .bmp or .tif")
    options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    return write_atomic(path, lambda handle: image.save(handle, format=image_format, **options), overwrite)
