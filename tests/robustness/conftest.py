"""Shared by the robustness tests: tiny random models saved as `--model` folders, an in-process CLI runner and
the arguments of a short tiny training run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from arbiscale.cli.main import main

# Fastest sampling the CLI accepts: these tests are about inputs and outputs, not image quality.
FAST = ("--steps", "1", "--no-progress")


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def error_line(self, code: int = 2) -> str:
        """The single stderr line of a refused command (asserting there is exactly one, and no traceback)."""
        assert self.code == code, (self.code, self.err)
        assert "Traceback" not in self.err, self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("arbiscale"), lines[0]
        return lines[0]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture):
    """Run `arbiscale ARGV...` in this process; returns its exit code and what it printed."""

    def run(*argv: object) -> Outcome:
        capsys.readouterr()
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    return run


@pytest.fixture
def upscale(cli, tiny_models: Path):
    """`arbiscale upscale` with the tiny SR model and one sampling step (options in `argv` take precedence)."""

    def run(*argv: object) -> Outcome:
        return cli("upscale", "--model", tiny_models / "sr", *FAST, *argv)

    return run


@pytest.fixture
def tiny_train_argv(photo_dir: Path):
    """`tiny_train_argv(run_dir, steps, *extra)`: `arbiscale train autoencoder` on `photo_dir`, tiny preset, batch 2,
    a checkpoint and a metrics line every step, no validation (options in `extra` take precedence)."""

    def argv(run_dir: Path, steps: int, *extra: object) -> list[str]:
        options = ["--steps", steps, "--batch-size", 2, "--checkpoint-every", 1, "--validate-every", 1000, "--log-every", 1, *extra]
        return ["train", "autoencoder", "--data", str(photo_dir), "--preset", "tiny", "--out", str(run_dir), *map(str, options)]

    return argv
