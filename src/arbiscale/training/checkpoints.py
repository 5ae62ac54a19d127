"""Checkpoint folders of a run: published atomically, verified before use, pruned to the newest few.

A checkpoint is `RUN_DIR/checkpoints/step-XXXXXXX/`: whatever `Accelerator.save_state` writes (model,
optimizer, EMA, RNG states of every process), plus `trainer_state.json` (the step) and, written last,
`manifest.json` (the size and sha256 of every file). It is assembled in a hidden temp folder and renamed
into place, so a crash leaves either a whole checkpoint or none; the manifest catches later damage (a file
missing, truncated or overwritten), and resuming then falls back to the previous checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..manifest import manifest_problem, write_json, write_manifest

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:07d}"


def temp_dir(final: Path) -> Path:
    """Where a checkpoint is assembled before it is renamed to `final` (same folder, so the rename is atomic)."""
    return final.parent / f".tmp-{final.name}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Published checkpoint folders, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def write_checkpoint_manifest(directory: Path, step: int) -> None:
    """Record the step, then the size and sha256 of every file; the manifest goes last, so its presence means complete."""
    write_json(directory / STATE_FILE, {"step": step})
    write_manifest(directory)


def checkpoint_problem(directory: Path) -> str | None:
    """Why a checkpoint cannot be trusted (missing manifest or step, missing, resized or altered file), or None if intact."""
    try:
        json.loads((directory / STATE_FILE).read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unreadable {STATE_FILE}: {type(error).__name__}"
    return manifest_problem(directory)


def checkpoint_step(directory: Path) -> int:
    return int(json.loads((directory / STATE_FILE).read_text())["step"])


def newest_intact(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint (or None) and one warning line per damaged newer one skipped."""
    warnings = []
    for directory in reversed(list_checkpoints(run_dir)):
        problem = checkpoint_problem(directory)
        if problem is None:
            return directory, warnings
        warnings.append(f"checkpoint {directory} is damaged ({problem}); falling back to the previous one")
    return None, warnings


def publish(temp: Path, final: Path) -> None:
    """Rename a finished temp folder into place, replacing a folder of the same name (e.g. a damaged one)."""
    if final.exists():
        trash = final.parent / f".old-{final.name}"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(temp, final)
        shutil.rmtree(trash)
    else:
        os.replace(temp, final)


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints, and leftovers of interrupted saves."""
    for directory in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(directory)
    root = Path(run_dir) / CHECKPOINTS
    for leftover in root.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
