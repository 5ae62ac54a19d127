from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from arbiscale.data.images import image_to_tensor, list_images, load_image, load_image_with_alpha, resize, save_image, tensor_to_image
from arbiscale.errors import UserError


def one_line_error_naming(excinfo: pytest.ExceptionInfo, path) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int64)


# --- listing -------------------------------------------------------------------------------------------


def test_list_images_is_recursive_sorted_and_skips_other_files(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/z.JPG", "a.png", "b/c.webp", "notes.txt", ".hidden.png", "d.tiff"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.png", "b/c.webp", "b/z.JPG", "d.tiff"]


def test_list_images_reads_a_split_file(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("x/1.png", "2.png", "3.png"):
        (tmp_path / name).write_bytes(b"x")
    split = tmp_path / "train.txt"
    split.write_text("# training split\nx/1.png\n\n3.png\n")
    assert list_images(tmp_path, split) == [tmp_path / "x/1.png", tmp_path / "3.png"]


def test_list_images_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_images(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    split = tmp_path / "split.txt"
    split.write_text("a.png\nmissing.png\n")
    with pytest.raises(UserError, match="missing.png"):
        list_images(tmp_path, split)
    with pytest.raises(UserError, match="split file"):
        list_images(tmp_path, tmp_path / "no-split.txt")


# --- colour modes --------------------------------------------------------------------------------------


def test_grayscale_and_bilevel_become_rgb(tmp_path):
    Image.new("L", (5, 3), 100).save(tmp_path / "gray.png")
    Image.new("1", (5, 3), 1).save(tmp_path / "bw.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.mode == "RGB" and gray.size == (5, 3)
    assert (pixels(gray) == 100).all()
    assert (pixels(load_image(tmp_path / "bw.png")) == 255).all()


def test_rgba_is_composited_on_white_and_alpha_is_kept_for_inference(tmp_path):
    array = np.zeros((2, 3, 4), dtype=np.uint8)
    array[0, 0] = (255, 0, 0, 0)  # transparent red -> white
    array[0, 1] = (0, 0, 255, 255)  # opaque blue stays blue
    array[0, 2] = (255, 0, 0, 128)  # half red over white
    Image.fromarray(array, mode="RGBA").save(tmp_path / "rgba.png")
    rgb = pixels(load_image(tmp_path / "rgba.png"))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [0, 0, 255]
    assert rgb[0, 2, 0] == 255 and 125 <= rgb[0, 2, 1] <= 129
    colours, alpha = load_image_with_alpha(tmp_path / "rgba.png")
    assert colours.mode == "RGB" and alpha.mode == "L"
    assert pixels(alpha)[0].tolist() == [0, 255, 128]
    assert pixels(colours)[0, 0].tolist() == [255, 0, 0]


def test_opaque_file_has_no_alpha(tmp_path):
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "rgb.png")
    colours, alpha = load_image_with_alpha(tmp_path / "rgb.png")
    assert alpha is None and pixels(colours)[0, 0].tolist() == [1, 2, 3]


def test_palette_with_and_without_transparency(tmp_path):
    palette_image = Image.new("P", (4, 2), 1)
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    palette_image.putpixel((0, 0), 0)
    palette_image.save(tmp_path / "palette.png")
    opaque = pixels(load_image(tmp_path / "palette.png"))
    assert opaque[1, 1].tolist() == [10, 200, 30] and opaque[0, 0].tolist() == [0, 0, 0]
    palette_image.save(tmp_path / "palette-transparent.png", transparency=0)
    composited = pixels(load_image(tmp_path / "palette-transparent.png"))
    assert composited[0, 0].tolist() == [255, 255, 255] and composited[1, 1].tolist() == [10, 200, 30]


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path):
    array = np.array([[0, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    image = load_image(tmp_path / "deep.png")
    assert image.mode == "RGB"
    assert pixels(image)[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_becomes_rgb(tmp_path):
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "cmyk.tif")
    assert pixels(load_image(tmp_path / "cmyk.tif"))[1, 1].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((8, 16, 3), dtype=np.uint8)
    array[:, :8] = (255, 0, 0)  # left half red
    array[:, 8:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(array).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    upright = pixels(load_image(tmp_path / "rotated.jpg"))
    assert upright.shape == (16, 8, 3)
    assert upright[:6, :, 0].mean() > 200 and upright[:6, :, 2].mean() < 50  # red on top
    assert upright[-6:, :, 2].mean() > 200 and upright[-6:, :, 0].mean() < 50  # blue below


# --- broken files --------------------------------------------------------------------------------------


def test_missing_empty_and_non_image_files(tmp_path):
    with pytest.raises(UserError, match="does not exist") as excinfo:
        load_image(tmp_path / "gone.png")
    one_line_error_naming(excinfo, tmp_path / "gone.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UserError, match="empty") as excinfo:
        load_image(tmp_path / "empty.png")
    one_line_error_naming(excinfo, tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("this is not a photo\n")
    with pytest.raises(UserError, match="not an image") as excinfo:
        load_image(tmp_path / "text.jpg")
    one_line_error_naming(excinfo, tmp_path / "text.jpg")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files(tmp_path, real_photos, suffix):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(real_photos["coffee"][:64, :64]).save(whole)
    cut = tmp_path / f"cut{suffix}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt") as excinfo:
        load_image(cut)
    one_line_error_naming(excinfo, cut)


@pytest.mark.parametrize("limit", [3000, 100])  # above the limit (Pillow warns) and above twice it (Pillow raises)
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, limit):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(UserError, match="too big") as excinfo:
        load_image(tmp_path / "big.png")
    one_line_error_naming(excinfo, tmp_path / "big.png")


# --- tensors and resizing ------------------------------------------------------------------------------


def test_tensor_round_trip_is_exact(real_photos):
    photo = Image.fromarray(real_photos["chelsea"][:40, :56])
    tensor = image_to_tensor(photo)
    assert tensor.shape == (3, 40, 56) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(pixels(tensor_to_image(tensor)), pixels(photo))
    assert np.array_equal(pixels(tensor_to_image(tensor.unsqueeze(0))), pixels(photo))


def test_resize_is_antialiased_and_clamped():
    stripes = torch.ones(1, 3, 32, 32)
    stripes[..., ::2] = -1  # one-pixel stripes: aliasing would keep them, a low-pass removes them
    small = resize(stripes, (8, 12))
    assert small.shape == (1, 3, 8, 12)
    assert small[..., 1:-1].abs().max() < 0.05  # borders keep a little of the edge stripe
    big = resize(stripes[0], (50, 70))
    assert big.shape == (3, 50, 70) and big.min() >= -1 and big.max() <= 1
    assert resize(stripes, (32, 32)) is stripes


# --- saving --------------------------------------------------------------------------------------------


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "out" / "result.png"
    save_image(Image.new("RGB", (4, 4), (9, 8, 7)), target)
    assert pixels(load_image(target))[0, 0].tolist() == [9, 8, 7]
    with pytest.raises(UserError, match="`overwrite`") as excinfo:
        save_image(Image.new("RGB", (4, 4), (1, 1, 1)), target)
    one_line_error_naming(excinfo, target)
    assert pixels(load_image(target))[0, 0].tolist() == [9, 8, 7]
    save_image(torch.ones(3, 4, 4), target, overwrite=True)
    assert pixels(load_image(target))[0, 0].tolist() == [255, 255, 255]
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.png"]  # no temp file left behind


def test_save_refuses_unknown_formats(tmp_path):
    with pytest.raises(UserError, match="format"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "result.xyz")
    assert not list(tmp_path.iterdir())


def test_saved_files_get_the_permissions_open_would_give(tmp_path):
    mask = os.umask(0o022)
    try:
        path = save_image(torch.zeros(3, 4, 4), tmp_path / "out.png")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
