"""Fuzzing: real photo files in five formats, with bytes flipped, cut, inserted or deleted, must never give a
traceback; the loader returns an image or raises a one-line UserError, and the CLI exits 0 or 2 with one line."""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mutations import mutate, mutation
from PIL import Image

from arbiscale.data.images import image_to_tensor, load_image_with_alpha
from arbiscale.errors import UserError

# Pillow warns about some damaged files (e.g. "Corrupt EXIF data") and still reads them; that is fine here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "EXIF-JPEG": ".jpg", "RGBA-PNG": ".png"}


@pytest.fixture(scope="module")
def seed_files(real_photos) -> dict[str, bytes]:
    """Valid files of a 20 x 28 real photo crop: the starting points of every mutation."""
    photo = Image.fromarray(real_photos["astronaut"][40:60, 200:228])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the EXIF block and the transpose are fuzzed too
    encoded = {}
    for name, image, options in (
        ("PNG", photo, {}),
        ("JPEG", photo, {"quality": 90}),
        ("WEBP", photo, {}),
        ("GIF", photo, {}),
        ("TIFF", photo, {}),
        ("EXIF-JPEG", photo, {"exif": exif}),
        ("RGBA-PNG", photo.convert("RGBA"), {}),
    ):
        buffer = io.BytesIO()
        image.save(buffer, format=name.split("-")[-1], **options)
        encoded[name] = buffer.getvalue()
    return encoded


mutated_files = st.tuples(st.sampled_from(sorted(SUFFIXES)), st.lists(mutation, min_size=1, max_size=4))


def write_mutant(folder: Path, seed_files: dict[str, bytes], case: tuple) -> Path:
    name, mutations = case
    path = folder / f"mutant{SUFFIXES[name]}"
    path.write_bytes(mutate(seed_files[name], mutations))
    return path


# A mutated header may claim a large but allowed size; a lower bomb limit keeps memory small while fuzzing.
FUZZ_PIXEL_LIMIT = 1 << 22


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_files)
def test_the_loader_returns_an_image_or_a_one_line_user_error(tmp_path, seed_files, case):
    path = write_mutant(tmp_path, seed_files, case)
    with mock.patch.object(Image, "MAX_IMAGE_PIXELS", FUZZ_PIXEL_LIMIT):
        try:
            colours, alpha = load_image_with_alpha(path)
        except UserError as error:
            assert "\n" not in str(error) and str(path) in str(error)
            event(f"{case[0]} refused")
            return
    event(f"{case[0]} read")
    assert colours.mode == "RGB" and min(colours.size) >= 1
    assert alpha is None or (alpha.mode == "L" and alpha.size == colours.size)
    assert image_to_tensor(colours).shape == (3, colours.height, colours.width)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_files)
def test_upscale_exits_0_or_2_with_one_line(tmp_path, seed_files, upscale, case):
    path = write_mutant(tmp_path, seed_files, case)
    target = tmp_path / "result.png"
    with mock.patch.object(Image, "MAX_IMAGE_PIXELS", FUZZ_PIXEL_LIMIT):
        result = upscale(path, "-o", target, "-s", "1.5", "--max-side", "96", "--overwrite")
    assert "Traceback" not in result.err
    event(f"exit {result.code}")
    if result.code == 0:
        with Image.open(target) as written:
            assert min(written.size) >= 1
    else:
        assert str(path) in result.error_line()
