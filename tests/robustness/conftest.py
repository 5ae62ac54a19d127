"""Shared by the robustness tests: tiny random models saved as `--model` folders, and an in-process CLI runner."""

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
