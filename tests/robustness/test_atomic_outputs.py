"""Outputs: an existing file is never replaced without --overwrite, and a save interrupted half-way (crash,
Ctrl-C, full disk) leaves neither a partial image nor a temp file, and keeps the file it was replacing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from arbiscale.data.images import save_image
from arbiscale.errors import UserError


@pytest.fixture
def photo(real_photos) -> Image.Image:
    return Image.fromarray(real_photos["coffee"][100:112, 300:316])


@pytest.fixture
def encoder_dies_half_way(monkeypatch):
    """Make the PNG encoder write half of its bytes and then fail with the given exception."""

    def install(error: BaseException) -> None:
        real_save = Image.SAVE["PNG"]

        def half_then_fail(image, handle, filename):
            whole = io.BytesIO()
            real_save(image, whole, filename)
            handle.write(whole.getvalue()[: len(whole.getvalue()) // 2])
            handle.flush()
            raise error

        monkeypatch.setitem(Image.SAVE, "PNG", half_then_fail)

    return install


@pytest.mark.parametrize(
    ("error", "raised"), [(KeyboardInterrupt(), KeyboardInterrupt), (RuntimeError("encoder bug"), RuntimeError), (OSError(28, "No space left on device"), UserError)]
)
def test_an_interrupted_save_leaves_nothing_and_keeps_the_old_file(tmp_path, photo, encoder_dies_half_way, error, raised):
    encoder_dies_half_way(error)
    new = tmp_path / "new.png"
    with pytest.raises(raised) as excinfo:
        save_image(photo, new)
    if raised is UserError:
        assert "\n" not in str(excinfo.value) and str(new) in str(excinfo.value) and "No space left" in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old.png"
    old.write_bytes(b"the user's file")
    with pytest.raises(raised):
        save_image(photo, old, overwrite=True)
    assert old.read_bytes() == b"the user's file"
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]


def test_an_interrupted_upscale_exits_130_and_leaves_no_partial_image(tmp_path, photo, upscale, encoder_dies_half_way):
    photo.save(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo_x2.png").write_bytes(b"previous result")
    encoder_dies_half_way(KeyboardInterrupt())
    result = upscale(tmp_path / "photo.jpg", "-o", out, "-s", "2", "--overwrite")
    assert "interrupted" in result.error_line(code=130)
    assert [p.name for p in out.iterdir()] == ["photo_x2.png"]
    assert (out / "photo_x2.png").read_bytes() == b"previous result"


def test_a_full_disk_is_a_one_line_error_per_output(tmp_path, photo, upscale, encoder_dies_half_way):
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg"):
        photo.save(tmp_path / "in" / name)
    encoder_dies_half_way(OSError(28, "No space left on device"))
    result = upscale(tmp_path / "in", "-o", tmp_path / "out", "-s", "2")
    assert result.code == 1 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and all("No space left on device" in line for line in lines)
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_outputs_stop_a_folder_run_before_any_work(tmp_path, photo, upscale):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo.save(inputs / "a.png")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(inputs / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_x2.png").write_bytes(b"keep me")
    line = upscale(inputs, "-o", out, "-s", "2").error_line()
    assert str(out / "b_x2.png") in line and "--overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == ["b_x2.png"]  # a_x2.png was not written either
    assert (out / "b_x2.png").read_bytes() == b"keep me"
    assert upscale(inputs, "-o", out, "-s", "2", "--overwrite").code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
    assert np.asarray(Image.open(out / "b_x2.png")).shape == (24, 32, 3)


def test_generate_never_replaces_an_existing_image(tmp_path, cli, tiny_models):
    out = tmp_path / "gen"
    out.mkdir()
    (out / "seed3_8x8.png").write_bytes(b"keep me")
    command = ("generate", "-o", out, "--size", "8x8", "--size", "12x12", "--seed", "3", "--model", tiny_models / "gen", "--steps", "1", "--no-progress")
    line = cli(*command).error_line()
    assert "seed3_8x8.png" in line and "--overwrite" in line
    assert [p.name for p in out.iterdir()] == ["seed3_8x8.png"] and (out / "seed3_8x8.png").read_bytes() == b"keep me"


def test_an_output_folder_that_cannot_exist_is_one_line(tmp_path, photo, cli, upscale, photo_dir):
    photo.save(tmp_path / "photo.png")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder would go")
    assert "cannot write" in upscale(tmp_path / "photo.png", "-o", blocker / "out", "-s", "2").error_line()
    assert "cannot write" in upscale(tmp_path / "photo.png", "-o", blocker / "x.png", "-s", "2").error_line()
    train = ("train", "autoencoder", "--data", photo_dir, "--preset", "tiny", "--steps", "1")
    assert f"{blocker} is a file" in cli(*train, "--out", blocker / "run").error_line()
    evaluate = ("eval", "sr", "--data", photo_dir, "--scales", "2", "--protocol", "liif-benchmark", "--baseline", "bicubic", "--no-progress")
    assert f"{blocker} is a file" in cli(*evaluate, "--out", blocker / "report").error_line()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "photo.png"] and blocker.read_text().startswith("a file")


def test_a_temp_file_left_by_a_killed_run_is_reported_and_kept(tmp_path, photo, upscale):
    """SIGKILL gives no chance to clean up: the next run that writes the same output names what was left."""
    out = tmp_path / "out"
    out.mkdir()
    photo.save(tmp_path / "photo.png")
    stale = out / ".photo_x2.png.k1ll3d.tmp"
    stale.write_bytes(b"half a png")
    outcome = upscale(tmp_path / "photo.png", "-o", out, "-s", "2")
    assert outcome.code == 0, outcome.err
    warning = [line for line in outcome.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and str(stale) in warning[0] and "interrupted write" in warning[0]
    assert stale.read_bytes() == b"half a png" and (out / "photo_x2.png").is_file()
