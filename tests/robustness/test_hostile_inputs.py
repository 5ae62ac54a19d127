"""The hostile inputs that once ended in a traceback or a silent surprise: each now gets one line (or a
clear warning) and the right exit status; a folder run goes on past a file it cannot name; a damaged
checkpoint, a second process and a changed resume are all caught."""

from __future__ import annotations

import fcntl
import json
import os
import shutil

import pytest
from PIL import Image

from arbiscale.training.checkpoints import list_checkpoints


@pytest.fixture
def photo(tmp_path, real_photos):
    path = tmp_path / "photo.png"
    Image.fromarray(real_photos["coffee"][100:116, 200:216]).save(path)
    return path


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["-s", "2", "--steps", "100000", "--sampler", "ddim"], "1000"),
        (["-s", "2", "--steps", "1001", "--sampler", "ddpm"], "1000"),
        (["-s", "2", "--seed", str(2**70)], "--seed"),
        (["-s", "2", "--seed", str(2**64 - 1), "--num-samples", "2"], "--seed"),
    ],
)
def test_upscale_past_the_schedule_or_the_seed_range(upscale, photo, tmp_path, options, named):
    outcome = upscale(photo, "-o", tmp_path / "out", *options)
    assert named in outcome.error_line()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("options", "named"), [(["--steps", "1001"], "1000"), (["--seed", "18446744073709551615", "--num", "2"], "--seed")])
def test_generate_past_the_schedule_or_the_seed_range(cli, tiny_models, tmp_path, options, named):
    outcome = cli("generate", "--model", tiny_models / "gen", "--size", "8x8", "-o", tmp_path / "gen", "--no-progress", *options)
    assert named in outcome.error_line()


def test_a_folder_run_goes_past_a_file_name_that_is_not_utf8(upscale, photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "good.png")
    shutil.copy(photo, os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9.png"))  # Latin-1 bytes in the name
    outcome = upscale(folder, "-o", tmp_path / "out", "-s", "2")
    assert outcome.code == 0, outcome.err
    assert "Traceback" not in outcome.err
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert "caf\\udce9" in outcome.out or "caf\\xe9" in outcome.out  # printed escaped, not as a crash


def test_a_config_that_cannot_build_its_model_is_one_line(upscale, photo, tiny_models, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_models / "sr", model)
    config_file = model / "denoiser" / "config.json"
    config = json.loads(config_file.read_text())
    config["unet_kwargs"]["norm_num_groups"] = 0
    config_file.write_text(json.dumps(config))
    line = upscale(photo, "-o", tmp_path / "out", "-s", "2", "--model", model).error_line()
    assert "LatentDenoiser" in line and str(model) in line


def test_a_binary_split_file_is_one_line(cli, photo, tmp_path):
    split = tmp_path / "split.txt"
    split.write_bytes(bytes(range(256)) * 4)
    line = cli("eval", "sr", "--data", photo.parent, "--split", split, "--scales", "2", "--baseline", "bicubic", "--out", tmp_path / "r").error_line()
    assert "UTF-8" in line and "split.txt" in line


@pytest.fixture
def train(cli, tiny_train_argv):
    """`train(run_dir, steps, *extra)`: a short tiny training run in this process (`tiny_train_argv`), its `Outcome`."""
    return lambda run_dir, steps, *extra: cli(*tiny_train_argv(run_dir, steps, *extra))


def test_train_seed_past_32_bits_is_one_line(cli, tmp_path, train):
    assert "--seed" in train(tmp_path / "run", 1, "--seed", str(2**32)).error_line()


def test_resume_falls_back_past_a_checkpoint_whose_bytes_were_replaced(cli, tmp_path, train):
    run_dir = tmp_path / "run"
    assert train(run_dir, 2).code == 0
    newest = list_checkpoints(run_dir)[-1]
    for name in ("model.safetensors", "optimizer.bin"):
        damaged = newest / name
        damaged.write_bytes(os.urandom(damaged.stat().st_size))  # same size: only the checksum can tell
        outcome = train(run_dir, 3, "--resume")
        assert outcome.code == 0, outcome.err
        warnings = [line for line in outcome.err.splitlines() if "warning" in line]
        assert len(warnings) == 1 and name in warnings[0] and "checksum" in warnings[0], outcome.err
        assert "(step 1)" in outcome.err
        shutil.rmtree(run_dir)
        assert train(run_dir, 2).code == 0
        newest = list_checkpoints(run_dir)[-1]


def test_a_second_process_on_one_run_folder_is_refused(cli, tmp_path, train):
    run_dir = tmp_path / "run"
    assert train(run_dir, 1).code == 0
    with open(run_dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `train` holds it
        held.write("process 12345")
        held.flush()
        line = train(run_dir, 2, "--resume").error_line()
    assert "in use" in line and "12345" in line
    assert train(run_dir, 2, "--resume").code == 0  # released: the resume goes on


def test_resume_with_other_settings_is_refused_unless_allowed(cli, tmp_path, real_photos, train):
    run_dir = tmp_path / "run"
    assert train(run_dir, 1).code == 0
    line = train(run_dir, 2, "--resume", "--lr", "0.5").error_line()
    assert "lr" in line and "--allow-changes" in line
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(real_photos["astronaut"][:64, :64]).save(other / "a.png")
    assert "data" in train(run_dir, 2, "--resume", "--data", other).error_line()  # a later --data wins
    outcome = train(run_dir, 2, "--resume", "--lr", "0.5", "--allow-changes")
    assert outcome.code == 0 and "resuming with a change: lr" in outcome.err
    assert train(run_dir, 3, "--resume", "--lr", "0.5").code == 0  # the change is now the run's


def test_scale_below_one_is_refused(upscale, photo, tmp_path):
    for scale in ("0.5", "1e-9"):
        assert "below 1" in upscale(photo, "-o", tmp_path / "out", "-s", scale).error_line()


def test_memory_past_what_is_free_is_refused_before_allocating(cli, upscale, tiny_models, photo, tmp_path):
    huge = cli("generate", "--model", tiny_models / "gen", "--size", "64x64", "--latent-size", "65536x65536", "--steps", "1", "-o", tmp_path / "gen")
    assert "of memory and" in huge.error_line() and "lower the latent size" in huge.error_line()
    budget = upscale(photo, "-s", "1000", "--max-side", "100000", "--max-memory", "1000TB", "-o", tmp_path / "up")
    assert "more than the" in budget.error_line() and "free here" in budget.error_line()
    assert not (tmp_path / "gen").exists() and not (tmp_path / "up").exists()


def test_an_unreadable_sub_folder_is_named_in_a_warning_and_the_rest_upscaled(upscale, photo, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    shutil.copy(photo, folder / "good.png")
    shutil.copy(photo, folder / "locked" / "hidden.png")
    scandir = os.scandir

    def refuse_locked(path="."):  # what a folder without read permission does (the tests run as root, who may read all)
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse_locked)
    outcome = upscale(folder, "-o", tmp_path / "out", "-s", "2")
    assert outcome.code == 0, outcome.err
    warning = [line for line in outcome.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "locked" in warning[0] and "Permission denied" in warning[0], outcome.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good_x2.png"]


def test_an_unreadable_input_is_not_called_corrupt(upscale, photo, monkeypatch, tmp_path):
    real_open = Image.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(photo):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refuse)
    line = upscale(photo, "-o", tmp_path / "out", "-s", "2").error_line()
    assert "permission denied" in line and "corrupt" not in line


def test_a_disk_that_fills_during_a_checkpoint_is_one_line_and_resume_goes_on(cli, tmp_path, monkeypatch, train):
    from accelerate import Accelerator

    run_dir = tmp_path / "run"
    assert train(run_dir, 1).code == 0
    save_state = Accelerator.save_state

    def disk_full(self, output_dir, **kwargs):
        save_state(self, output_dir, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Accelerator, "save_state", disk_full)
    outcome = train(run_dir, 2, "--resume")
    errors = [line for line in outcome.err.splitlines() if "error:" in line]
    assert outcome.code == 2 and "Traceback" not in outcome.err and len(errors) == 1, outcome.err
    assert "No space left on device" in errors[0] and "step-0000001" in errors[0]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-0000001"]  # the half-written one is gone
    monkeypatch.setattr(Accelerator, "save_state", save_state)
    assert train(run_dir, 2, "--resume").code == 0
    assert [p.name for p in list_checkpoints(run_dir)][-1] == "step-0000002"


def test_a_batch_too_big_for_the_memory_is_refused_before_the_first_step(cli, tmp_path, train):
    line = train(tmp_path / "run", 1, "--batch-size", "10000000").error_line()
    assert "batch of 10000000" in line and "is free" in line and "--batch-size" in line
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))
