"""Fixtures shared by the whole suite: real photos shipped inside scikit-image (nothing is downloaded)."""

from __future__ import annotations

import io
import multiprocessing
import os
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from PIL import Image

from arbiscale.models import ImplicitAutoencoder, LatentDenoiser
from arbiscale.pipelines import GenerationPipeline, UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling import make_scheduler

# The suite runs as `pytest -n 2` on 2 cores: more than one thread per worker oversubscribes the CPU and
# makes small convolutions over 10x slower.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # so the commands' `--threads auto` keeps it (cli.inference_options)

# The property and fuzz tests draw the same cases at every run, so a red suite means the code changed, not the
# draw; ARBISCALE_FUZZ_EXPLORE=1 draws new cases (a failing one is printed, to be kept as an @example).
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("ARBISCALE_FUZZ_EXPLORE") == "1" else "suite")

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` tests first: xdist deals the first quarter of the items out in turn and the rest on demand,
    so long tests at the front and short ones at the back let both workers finish together."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def real_photos() -> dict[str, np.ndarray]:
    """Full-size RGB photos (H, W, 3) uint8 by name: astronaut 512x512, coffee 400x600, chelsea 300x451, rocket 427x640."""
    from skimage import data

    return {name: getattr(data, name)() for name in PHOTO_NAMES}


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory, real_photos: dict[str, np.ndarray]) -> Path:
    """A folder of four 128x160 (H x W) real photo crops saved as PNG, one per photo (astronaut.png, ...)."""
    folder = tmp_path_factory.mktemp("photos")
    for name, photo in real_photos.items():
        top = (photo.shape[0] - 128) // 2
        left = (photo.shape[1] - 160) // 2
        Image.fromarray(photo[top : top + 128, left : left + 160]).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sr/` and `gen/` pipeline folders of the tiny preset with random weights (one shared autoencoder)."""
    root = tmp_path_factory.mktemp("tiny_models")
    preset = get_preset("tiny")
    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**preset.autoencoder)
    for task, pipeline_class in (("sr", UpscalePipeline), ("gen", GenerationPipeline)):
        denoiser = LatentDenoiser.from_preset(preset, task)
        denoiser.set_latent_scale(50.0)
        pipeline_class(autoencoder, denoiser, make_scheduler("ddpm")).save_pretrained(root / task)
    return root


SVGS = {
    "ring.png": '<circle cx="8" cy="8" r="5" fill="none" stroke="#d02020" stroke-width="2"/>',
    "face.png": '<circle cx="8" cy="8" r="7" fill="#f0c020"/><circle cx="5.5" cy="6" r="1.2" fill="#302010"/>'
    '<circle cx="10.5" cy="6" r="1.2" fill="#302010"/><rect x="5" y="10" width="6" height="1.2" fill="#302010"/>',
    "flag.png": '<rect x="2" y="3" width="12" height="4" fill="#2040c0"/><rect x="2" y="7" width="12" height="4" fill="#20a040"/><polygon points="2,3 8,7 2,11" fill="#ffffff"/>',
}


def render_set(root: Path, sides: tuple[int, ...]) -> Path:
    """Exact resvg renders of the SVGS at every side, as scripts/build_vector_set.py lays them out."""
    resvg_py = pytest.importorskip("resvg_py")
    for side in sides:
        (root / str(side)).mkdir(parents=True, exist_ok=True)
        for name, body in SVGS.items():
            svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">{body}</svg>'
            png = resvg_py.svg_to_bytes(svg_string=svg, width=side, height=side, background="#ffffff")
            Image.open(io.BytesIO(bytes(png))).convert("RGB").save(root / str(side) / name)
    return root


@pytest.fixture(scope="session")
def make_render_set():
    """`make_render_set(root, sides)`: a small vector set (three SVGs rendered exactly at every side), as
    scripts/build_vector_set.py lays one out; skips the test without resvg-py."""
    return render_set


@dataclass(frozen=True)
class RankOutcome:
    code: int
    output: str  # stdout and stderr together


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_main_in_child(argv: list[str], log: Path, env: dict[str, str], cwd: Path | None) -> None:
    """The body of a forked process: `main(argv)` with `env` added, its output to `log`, its exit code."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)
        os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        from accelerate.state import AcceleratorState

        from arbiscale.cli.main import main

        AcceleratorState._reset_state(reset_partial_state=True)  # the parent's single-process state
        code = main(argv)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


def fork_main(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> multiprocessing.Process:
    """`arbiscale ARGV` started as a separate process, forked from this one, which has torch, diffusers and
    accelerate imported already: a real process (it can be killed, it exits with main's code) without a
    fresh interpreter's import time (about 8 s here, more on a busy machine)."""
    process = multiprocessing.get_context("fork").Process(target=run_main_in_child, args=([str(arg) for arg in argv], log, env or {}, cwd))
    process.start()
    return process


@pytest.fixture(scope="session")
def fork_process() -> Callable[..., multiprocessing.Process]:
    """`fork_process(argv, log)`: `fork_main`, for tests and fixtures of any scope."""
    return fork_main


@pytest.fixture
def run_ranks(tmp_path: Path) -> Callable[..., list[RankOutcome]]:
    """`run_ranks(*argv, processes=2, cwd=None)`: `arbiscale ARGV` as that many forked processes joined by gloo
    on this machine, with the environment `accelerate launch --multi_gpu --num_processes N` gives each, on
    the CPU (ACCELERATE_USE_CPU=1; the `launch`-marked test in tests/cli/test_processes.py runs `accelerate launch` itself); each process's
    outcome, after asserting that all exited 0 (unless `check=False`)."""
    launches = iter(range(1000))

    def run(*argv: object, processes: int = 2, cwd: Path | None = None, check: bool = True) -> list[RankOutcome]:
        launch, port = next(launches), free_port()
        logs = [tmp_path / f".rank-{launch}-{rank}.log" for rank in range(processes)]
        common = {"WORLD_SIZE": str(processes), "LOCAL_WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        common.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="1")
        children = [fork_main(list(argv), log, {**common, "RANK": str(rank), "LOCAL_RANK": str(rank)}, cwd) for rank, log in enumerate(logs)]
        for child in children:
            child.join(timeout=600)
            if child.exitcode is None:
                child.kill()
        outcomes = [RankOutcome(-9 if child.exitcode is None else child.exitcode, log.read_text()) for child, log in zip(children, logs)]
        assert not check or all(outcome.code == 0 for outcome in outcomes), "\n".join(f"rank {rank}, exit {o.code}:\n{o.output[-3000:]}" for rank, o in enumerate(outcomes))
        return outcomes

    return run
