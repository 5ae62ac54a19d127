import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from arbiscale.cli.main import main
from arbiscale.pipelines import base as pipeline_base

FAST = ["--steps", "2", "--no-progress"]


def write_image(path, size, channels=3, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.RandomState(seed).randint(0, 256, (*size, channels), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def one_error_line(capsys, option):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and option in lines[0]


def test_upscale_file_to_folder_at_a_non_integer_scale(tmp_path, tiny_models, capsys):
    source = write_image(tmp_path / "photo.png", (10, 14))
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "-s", "2.37", "--model", str(tiny_models / "sr"), *FAST]) == 0
    assert Image.open(tmp_path / "out" / "photo_x2.37.png").size == (33, 24)  # PIL sizes are (W, H)
    assert "photo_x2.37.png" in capsys.readouterr().out


def test_upscale_to_an_explicit_size_and_single_file(tmp_path, tiny_models):
    source = write_image(tmp_path / "photo.png", (10, 14))
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "--size", "50x20", "--model", str(tiny_models / "sr"), *FAST]) == 0
    assert Image.open(tmp_path / "out" / "photo_50x20.png").size == (50, 20)  # WIDTHxHEIGHT, as PIL's (W, H)
    target = tmp_path / "single.jpg"
    assert main(["upscale", str(source), "-o", str(target), "-s", "3.7", "--model", str(tiny_models / "sr"), *FAST]) == 0
    assert Image.open(target).size == (52, 37)


def test_size_is_width_x_height(tmp_path, tiny_models):
    source = write_image(tmp_path / "photo.png", (9, 16))
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "--size", "64x36", "--model", str(tiny_models / "sr"), *FAST]) == 0
    assert Image.open(tmp_path / "out" / "photo_64x36.png").size == (64, 36)  # 64 wide, 36 tall


def test_skip_existing_keeps_outputs_and_makes_the_missing_ones(tmp_path, tiny_models, capsys):
    sources = [write_image(tmp_path / "in" / f"{name}.png", (8, 8), seed=i) for i, name in enumerate(("a", "b"))]
    out = tmp_path / "out"
    command = ["upscale", str(sources[0]), "-o", str(out), "-s", "2", "--model", str(tiny_models / "sr"), *FAST]
    assert main(command) == 0
    kept = (out / "a_x2.png").stat().st_mtime_ns
    assert main(command) == 2  # refused without a choice
    assert "--skip-existing" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "in"), *command[2:], "--skip-existing"]) == 0
    assert (out / "a_x2.png").stat().st_mtime_ns == kept and (out / "b_x2.png").is_file()


def test_lr_consistency_flag_makes_the_output_shrink_back_to_the_input(tmp_path, tiny_models):
    source = write_image(tmp_path / "photo.png", (12, 16))
    common = [str(source), "-s", "3", "--model", str(tiny_models / "sr"), *FAST]
    assert main(["upscale", *common, "-o", str(tmp_path / "raw.png"), "--no-lr-consistency"]) == 0
    assert main(["upscale", *common, "-o", str(tmp_path / "consistent.png")]) == 0  # on by default

    def shrunk_error(path):
        shrunk = Image.open(path).resize((16, 12), Image.Resampling.BICUBIC, reducing_gap=None)
        return np.abs(np.asarray(shrunk).astype(int) - pixels(source)).mean()

    assert shrunk_error(tmp_path / "consistent.png") < shrunk_error(tmp_path / "raw.png") / 2


def test_several_samples_get_suffixes_and_differ(tmp_path, tiny_models):
    source = write_image(tmp_path / "photo.png", (8, 8))
    out = tmp_path / "out"
    assert main(["upscale", str(source), "-o", str(out), "-s", "2", "--num-samples", "2", "--model", str(tiny_models / "sr"), *FAST]) == 0
    first, second = out / "photo_x2_seed0.png", out / "photo_x2_seed1.png"
    assert np.abs(pixels(first) - pixels(second)).max() > 0
    # sample k uses seed + k: a one-sample run with --seed 1 reproduces the second sample
    assert main(["upscale", str(source), "-o", str(tmp_path / "again.png"), "-s", "2", "--seed", "1", "--model", str(tiny_models / "sr"), *FAST]) == 0
    assert np.abs(pixels(tmp_path / "again.png") - pixels(second)).max() <= 1


def test_same_seed_same_file_other_seed_other_file(tmp_path, tiny_models):
    source = write_image(tmp_path / "photo.png", (8, 12))
    runs = {}
    for name, seed in (("a.png", "5"), ("b.png", "5"), ("c.png", "6")):
        assert main(["upscale", str(source), "-o", str(tmp_path / name), "-s", "2", "--seed", seed, "--model", str(tiny_models / "sr"), *FAST]) == 0
        runs[name] = pixels(tmp_path / name)
    assert np.array_equal(runs["a.png"], runs["b.png"])
    assert not np.array_equal(runs["a.png"], runs["c.png"])


def test_folder_run_skips_a_bad_file_and_fails_at_the_end(tmp_path, tiny_models, capsys):
    inputs = tmp_path / "in"
    write_image(inputs / "one.png", (8, 10))
    write_image(inputs / "nested" / "two.jpg", (10, 8), seed=1)
    (inputs / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["upscale", str(inputs), "-o", str(out), "-s", "1.5", "--model", str(tiny_models / "sr"), *FAST]) == 1
    assert Image.open(out / "one_x1.5.png").size == (15, 12)
    assert Image.open(out / "nested" / "two_x1.5.png").size == (12, 15)
    assert not (out / "broken_x1.5.png").exists()
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err


def test_transparency_is_kept(tmp_path, tiny_models):
    source = write_image(tmp_path / "logo.png", (8, 8), channels=4)
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "-s", "2", "--model", str(tiny_models / "sr"), *FAST]) == 0
    result = Image.open(tmp_path / "out" / "logo_x2.png")
    assert result.mode == "RGBA" and result.size == (16, 16)


def test_existing_output_is_refused_unless_overwrite(tmp_path, tiny_models, capsys):
    source = write_image(tmp_path / "photo.png", (8, 8))
    target = tmp_path / "result.png"
    target.write_bytes(b"keep me")
    command = ["upscale", str(source), "-o", str(target), "-s", "2", "--model", str(tiny_models / "sr"), *FAST]
    assert main(command) == 2
    one_error_line(capsys, "--overwrite")
    assert target.read_bytes() == b"keep me"
    assert main([*command, "--overwrite"]) == 0
    assert Image.open(target).size == (16, 16)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (["-s", "0"], "--scale"),
        (["-s", "-2"], "--scale"),
        (["-s", "0.5"], "below 1"),
        (["-s", "1e-9"], "below 1"),
        (["--size", "300"], "300x300"),
        (["-s", "2", "--overwrite", "--skip-existing"], "--skip-existing"),
        (["-s", "nan"], "--scale"),
        (["-s", "inf"], "--scale"),
        (["-s", "abc"], "--scale"),
        (["--size", "0x10"], "--size"),
        (["--size", "abc"], "--size"),
        (["-s", "3000"], "--max-side"),
        (["--size", "30000x10"], "--max-side"),
        (["-s", "2", "--max-side", "0"], "--max-side"),
        (["-s", "2", "--steps", "0"], "--steps"),
        (["-s", "2", "--sampler", "euler"], "--sampler"),
        (["-s", "2", "--eta", "2"], "--eta"),
        (["-s", "2", "--sampler", "unipc", "--eta", "0.5"], "--eta"),
        (["-s", "2", "--num-samples", "0"], "--num-samples"),
        (["-s", "2", "--device", "tpu"], "--device"),
        (["-s", "2", "--dtype", "fp8"], "--dtype"),
        (["-s", "2", "--seed", "-1"], "--seed"),
        ([], "--scale"),
        (["-s", "2", "--size", "4x4"], "--size"),
        (["-s", "2", "--num-samples", "2", "-o", "one.png"], "folder"),
        (["-s", "2", "--max-latent-side", "x"], "--max-latent-side"),
        (["-s", "2", "--strength", "0"], "--strength"),
        (["-s", "2", "--strength", "1.5"], "--strength"),
        (["-s", "2", "--strength", "x"], "--strength"),
    ],
)
def test_bad_upscale_values_exit_2_with_one_line(tmp_path, tiny_models, capsys, monkeypatch, options, option):
    monkeypatch.chdir(tmp_path)
    source = write_image(tmp_path / "photo.png", (10, 10))
    assert main(["upscale", str(source), "-o", "out", "--model", str(tiny_models / "sr"), *options]) == 2
    one_error_line(capsys, option)


def test_missing_input_and_wrong_model_exit_2(tmp_path, tiny_models, capsys):
    assert main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "-s", "2", "--model", str(tiny_models / "sr")]) == 2
    one_error_line(capsys, "does not exist")
    source = write_image(tmp_path / "photo.png", (8, 8))
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "-s", "2", "--model", str(tiny_models / "gen")]) == 2
    one_error_line(capsys, "--model")


def test_no_bundled_model_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline_base.resources, "files", lambda package: tmp_path)
    source = write_image(tmp_path / "photo.png", (8, 8))
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "-s", "2"]) == 2
    one_error_line(capsys, "no bundled model is installed")
    assert main(["generate", "-o", str(tmp_path / "gen"), "--size", "8x8"]) == 2
    one_error_line(capsys, "saved model")


def test_generate_renders_each_image_at_every_size(tmp_path, tiny_models, capsys):
    out = tmp_path / "gen"
    command = ["generate", "-o", str(out), "--size", "16x24", "--size", "8x8", "--num", "3", "--seed", "7", "--model", str(tiny_models / "gen"), *FAST]
    assert main([*command, "--batch-size", "2"]) == 0
    for seed in (7, 8, 9):
        assert Image.open(out / f"seed{seed}_16x24.png").size == (16, 24)
        assert Image.open(out / f"seed{seed}_8x8.png").size == (8, 8)
    assert not np.array_equal(pixels(out / "seed7_16x24.png"), pixels(out / "seed8_16x24.png"))
    # the batch size does not change the pictures; existing files need --overwrite
    first = pixels(out / "seed9_16x24.png")
    assert main([*command, "--batch-size", "1"]) == 2
    one_error_line(capsys, "--overwrite")
    assert main([*command, "--batch-size", "1", "--overwrite"]) == 0
    assert np.abs(pixels(out / "seed9_16x24.png") - first).max() <= 1


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ([], "--size"),
        (["--size", "0x10"], "--size"),
        (["--size", "8x8", "--num", "0"], "--num"),
        (["--size", "8x8", "--latent-size", "abc"], "--latent-size"),
        (["--size", "99999x8"], "--max-side"),
        (["--size", "8x8", "-o", "picture.png"], "folder"),
    ],
)
def test_bad_generate_values_exit_2_with_one_line(tmp_path, tiny_models, capsys, monkeypatch, options, option):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "-o", "gen", "--model", str(tiny_models / "gen"), *options]) == 2
    one_error_line(capsys, option)


def test_console_exit_code_and_message_without_traceback(tmp_path):
    source = write_image(tmp_path / "photo.png", (8, 8))
    result = subprocess.run(
        [sys.executable, "-m", "arbiscale.cli.main", "upscale", str(source), "-o", str(tmp_path / "out"), "-s", "-1"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "arbiscale upscale: error: --scale must be a positive finite number, got -1"


def test_version_and_help_speak_to_users(capsys):
    from arbiscale import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"arbiscale {__version__}"
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "WIDTHxHEIGHT" in text and "Entry point" not in text
    for command in (["upscale"], ["generate"], ["eval", "sr"], ["eval", "gen"]):
        assert main([*command, "--help"]) == 0
        assert "usage:" in capsys.readouterr().out
