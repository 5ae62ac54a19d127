"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def quick_train() -> Callable[..., list[str]]:
    """`quick_train(stage, data, out, *options)`: the arguments of `arbiscale train STAGE` on the tiny preset with
    batch 2, logging, validating and checkpointing every 2 steps (later `options` take precedence)."""

    def argv(stage: str, data: Path, out: Path, *options: object) -> list[str]:
        common = ["--preset", "tiny", "--batch-size", "2", "--log-every", "2", "--validate-every", "2", "--checkpoint-every", "2"]
        return ["train", stage, "--data", str(data), "--out", str(out), *common, *map(str, options)]

    return argv
