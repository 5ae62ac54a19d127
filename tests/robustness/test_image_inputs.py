"""Every kind of input file a photo folder may hold, through `arbiscale upscale`: odd formats work, bad ones
are refused in one line, and in a folder run they are skipped while the rest is processed."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arbiscale.data.images import MAX_IMAGE_PIXELS, load_image, load_image_with_alpha

# PNG colour types (PNG spec, IHDR)
GRAY, RGB, GRAY_ALPHA, RGBA = 0, 2, 4, 6


def png_bytes(pixels: np.ndarray, color_type: int, claimed_size: tuple[int, int] | None = None) -> bytes:
    """A PNG written by hand, for what Pillow cannot write: 16-bit colour, or a header claiming another (H, W)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = claimed_size or pixels.shape[:2]
    big_endian = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = b"".join(b"\0" + big_endian[y].tobytes() for y in range(pixels.shape[0]))
    header = struct.pack(">IIBBBBB", width, height, 8 * pixels.dtype.itemsize, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def photo(real_photos):
    """A 12 x 16 (H x W) crop of a real photo, uint8 RGB."""
    return real_photos["chelsea"][120:132, 200:216].copy()


def output_of(out_dir: Path) -> Image.Image:
    (path,) = out_dir.iterdir()
    image = Image.open(path)
    image.load()
    return image


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


# --- unusual but valid files -----------------------------------------------------------------------


def test_one_pixel_images_upscale_to_the_asked_size(tmp_path, upscale):
    Image.new("RGB", (1, 1), (200, 30, 40)).save(tmp_path / "dot.png")
    assert upscale(tmp_path / "dot.png", "-o", tmp_path / "x3", "-s", "3").code == 0
    assert output_of(tmp_path / "x3").size == (3, 3)
    assert upscale(tmp_path / "dot.png", "-o", tmp_path / "sized", "--size", "5x7").code == 0
    assert output_of(tmp_path / "sized").size == (5, 7)  # WIDTHxHEIGHT, as PIL sizes are (W, H)
    Image.new("RGB", (1, 200), (1, 2, 3)).save(tmp_path / "thread.png")  # one pixel wide, an exact smaller size
    assert upscale(tmp_path / "thread.png", "-o", tmp_path / "thin", "--size", "1x20").code == 0
    assert output_of(tmp_path / "thin").size == (1, 20)


@pytest.mark.parametrize(("color_type", "channels", "mode"), [(GRAY, 1, "RGB"), (RGB, 3, "RGB"), (GRAY_ALPHA, 2, "RGBA"), (RGBA, 4, "RGBA")])
def test_16_bit_pngs_are_read_at_8_bits_and_upscaled(tmp_path, upscale, photo, color_type, channels, mode):
    deep = np.dstack([photo.astype(np.uint16) * 257] * 2)[..., :channels]  # 16-bit version of the photo's values
    source = tmp_path / "deep.png"
    source.write_bytes(png_bytes(deep[..., 0] if channels == 1 else deep, color_type))
    colours, alpha = load_image_with_alpha(source)
    assert np.abs(np.asarray(colours, dtype=int)[..., 0] - photo[..., 0]).max() <= 1
    assert (alpha is not None) == (mode == "RGBA")
    assert upscale(source, "-o", tmp_path / "out", "-s", "2").code == 0
    result = output_of(tmp_path / "out")
    assert result.mode == mode and result.size == (32, 24)


def test_alpha_is_upscaled_separately_and_written_to_the_png(tmp_path, upscale, photo):
    alpha = np.zeros(photo.shape[:2], dtype=np.uint8)
    alpha[:, 8:] = 255  # left half transparent, right half opaque
    Image.fromarray(np.dstack([photo, alpha]), mode="RGBA").save(tmp_path / "cut-out.png")
    assert upscale(tmp_path / "cut-out.png", "-o", tmp_path / "out", "-s", "2.5").code == 0
    result = output_of(tmp_path / "out")
    assert result.mode == "RGBA" and result.size == (40, 30)
    upscaled_alpha = np.asarray(result.getchannel("A"))
    assert (upscaled_alpha[:, :16] == 0).all() and (upscaled_alpha[:, 24:] == 255).all()
    # a format without alpha gets the transparent part on white, as a viewer would show it
    assert upscale(tmp_path / "cut-out.png", "-o", tmp_path / "flat.bmp", "-s", "2.5").code == 0
    flat = np.asarray(Image.open(tmp_path / "flat.bmp"))
    assert flat.shape == (30, 40, 3) and (flat[:, :16] == 255).all()


@pytest.mark.parametrize("kind", ["gray", "bilevel", "palette", "palette-transparent", "gray-alpha"])
def test_gray_palette_and_bilevel_files(tmp_path, upscale, photo, kind):
    rgb = Image.fromarray(photo)
    image = {"gray": rgb.convert("L"), "bilevel": rgb.convert("1"), "palette": rgb.convert("P"), "palette-transparent": rgb.convert("P"), "gray-alpha": rgb.convert("LA")}[kind]
    source = tmp_path / f"{kind}.png"
    image.save(source, **({"transparency": 0} if kind == "palette-transparent" else {}))
    assert Image.open(source).mode == image.mode
    assert upscale(source, "-o", tmp_path / "out", "-s", "1.5").code == 0
    result = output_of(tmp_path / "out")
    assert result.size == (24, 18)
    assert result.mode == ("RGBA" if kind in ("palette-transparent", "gray-alpha") else "RGB")


def test_cmyk_jpeg_reads_as_its_colours(tmp_path, upscale, real_photos):
    photo = real_photos["coffee"][150:214, 250:314]
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    assert np.abs(np.asarray(load_image(tmp_path / "print.jpg"), dtype=float) - photo).mean() < 6
    assert upscale(tmp_path / "print.jpg", "-o", tmp_path / "out", "--size", "32x32").code == 0
    assert output_of(tmp_path / "out").size == (32, 32)


@pytest.mark.parametrize(("orientation", "upright_hw"), [(1, (12, 16)), (3, (12, 16)), (6, (16, 12)), (8, (16, 12))])
def test_exif_orientation_gives_the_upright_size(tmp_path, upscale, photo, orientation, upright_hw):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(photo).save(tmp_path / "camera.jpg", exif=exif)
    assert upscale(tmp_path / "camera.jpg", "-o", tmp_path / "out", "-s", "2").code == 0
    height, width = upright_hw
    assert output_of(tmp_path / "out").size == (2 * width, 2 * height)


# --- broken files: one line naming the file, exit 2, nothing written ----------------------------------


def broken_file(folder: Path, kind: str, photo: np.ndarray) -> tuple[Path, str]:
    """(a broken file of `kind`, a phrase its error message must contain)."""
    png = folder / "photo-source.png"
    Image.fromarray(photo).save(png)
    whole = png.read_bytes()
    png.unlink()
    if kind == "zero-byte":
        path, phrase = folder / "empty.png", "empty"
        path.write_bytes(b"")
    elif kind == "text":
        path, phrase = folder / "notes.jpg", "not an image"
        path.write_text("shopping list: milk, eggs\n")
    elif kind == "truncated-png":
        path, phrase = folder / "cut.png", "truncated or corrupt"
        path.write_bytes(whole[: len(whole) * 2 // 3])
    elif kind == "truncated-jpeg":
        path, phrase = folder / "half.jpg", "truncated or corrupt"
        Image.fromarray(photo).save(path, quality=90)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":
        path, phrase = folder / "scrambled.png", "truncated or corrupt"
        middle = len(whole) // 2
        path.write_bytes(whole[:middle] + bytes(range(64)) + whole[middle + 64 :])
    elif kind == "bomb":  # a 100-byte file whose header claims 40000 x 40000 pixels
        path, phrase = folder / "bomb.png", "too big"
        path.write_bytes(png_bytes(np.zeros((1, 1), np.uint8), GRAY, claimed_size=(40000, 40000)))
    elif kind == "mild-bomb":  # just over the limit: Pillow only warns about these
        path, phrase = folder / "mild-bomb.png", "too big"
        side = int(MAX_IMAGE_PIXELS**0.5) + 1
        path.write_bytes(png_bytes(np.zeros((1, 1), np.uint8), GRAY, claimed_size=(side, side)))
    else:
        raise AssertionError(kind)
    return path, phrase


BROKEN = ["zero-byte", "text", "truncated-png", "truncated-jpeg", "corrupt", "bomb", "mild-bomb"]


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_file_is_refused_in_one_line(tmp_path, upscale, photo, kind):
    path, phrase = broken_file(tmp_path, kind, photo)
    line = upscale(path, "-o", tmp_path / "out", "-s", "2").error_line()
    assert str(path) in line and phrase in line
    assert not (tmp_path / "out").exists()


def test_a_folder_run_skips_each_bad_file_and_processes_the_rest(tmp_path, upscale, photo, real_photos):
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    Image.fromarray(photo).save(inputs / "good.png")
    Image.fromarray(photo[:10]).save(inputs / "nested" / "also-good.jpg")
    Image.fromarray(real_photos["rocket"][:100, :100]).save(inputs / "too-big-at-this-scale.png")
    bad = [broken_file(inputs, kind, photo)[0] for kind in BROKEN] + [inputs / "too-big-at-this-scale.png"]
    out = tmp_path / "out"
    result = upscale(inputs, "-o", out, "-s", "3", "--max-side", "100")
    assert result.code == 1
    assert Image.open(out / "good_x3.png").size == (48, 36)
    assert Image.open(out / "nested" / "also-good_x3.png").size == (48, 30)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["good_x3.png", "nested/also-good_x3.png"]
    lines = result.err.strip().splitlines()
    assert "Traceback" not in result.err and len(lines) == len(bad)
    for path in bad:
        assert sum(f"skipped {path}:" in line for line in lines) == 1, path
    assert no_temp_files(out)
