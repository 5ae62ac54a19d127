"""`accelerate launch --num_processes 2 ... upscale|generate`: two CPU processes (gloo) split the work
and write the same files, byte for byte, as one process; a rerun with --skip-existing adds nothing.
The suite's runs are forked processes given the environment `accelerate launch` gives each (`run_ranks`),
which spares a fresh interpreter's imports per process (about 8 s each). `accelerate launch` itself
(README's command) is the `launch`-marked test, left out of README's test command and run by `.ci/run`
(`pytest -m launch`): its three fresh interpreters cost about 20 s of the suite's 3 minutes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from arbiscale.cli.main import main


def launch_two(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
        "-m",
        "arbiscale.cli.main",
        *argv,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def files_of(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture
def photos(tmp_path):
    """Five small random photos, one in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for k, (name, size) in enumerate([("a.png", (12, 16)), ("b.png", (16, 12)), ("sub/c.png", (10, 10)), ("d.png", (8, 14)), ("e.png", (9, 9))]):
        Image.fromarray(np.random.RandomState(k).randint(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def upscale_argv(photos, tiny_models) -> list[str]:
    return ["upscale", str(photos), "-s", "2.5", "--num-samples", "2", "--model", str(tiny_models / "sr"), "--steps", "2", "--no-progress"]


@pytest.mark.launch
def test_accelerate_launch_splits_the_work_as_the_forked_ranks_do(tmp_path, photos, tiny_models):
    upscale = upscale_argv(photos, tiny_models)
    assert main([*upscale, "-o", str(tmp_path / "one")]) == 0
    launch_two(tmp_path, *upscale, "-o", str(tmp_path / "two"))
    assert len(files_of(tmp_path / "one")) == 10 and files_of(tmp_path / "one") == files_of(tmp_path / "two")


@pytest.mark.slow
def test_two_processes_write_the_files_of_one(tmp_path, photos, tiny_models, run_ranks):
    upscale = upscale_argv(photos, tiny_models)
    generate = ["generate", "--size", "16x12", "--size", "8x8", "--num", "5", "--batch-size", "2", "--model", str(tiny_models / "gen"), "--steps", "2", "--no-progress"]
    assert main([*upscale, "-o", str(tmp_path / "one")]) == 0 and main([*generate, "-o", str(tmp_path / "gen-one")]) == 0
    run_ranks(*upscale, "-o", tmp_path / "two", cwd=tmp_path)
    run_ranks(*generate, "-o", tmp_path / "gen-two", cwd=tmp_path)
    one, two = files_of(tmp_path / "one"), files_of(tmp_path / "two")
    assert len(one) == 10 and one == two
    assert len(files_of(tmp_path / "gen-one")) == 10 and files_of(tmp_path / "gen-one") == files_of(tmp_path / "gen-two")

    (tmp_path / "two" / "d_x2.5_seed1.png").unlink()  # an interrupted run: one output missing
    rerun = run_ranks(*upscale, "-o", tmp_path / "two", "--skip-existing", cwd=tmp_path)
    assert files_of(tmp_path / "two") == one and sum(rank.output.count("kept the existing") for rank in rerun) == 4
