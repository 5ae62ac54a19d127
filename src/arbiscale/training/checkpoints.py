"""Checkpoint folders of a run: published atomically, verified before use, pruned to the newest few.

A checkpoint is `RUN_DIR/checkpoints/step-XXXXXXX/`: whatever `Accelerator.save_state` writes (model,
optimizer, EMA, RNG states of every process), plus `trainer_state.json` (the step) and, written last,
`manifest.json` (the size and sha256 of every file). It is assembled in a hidden temp folder and renamed
into place, so a crash leaves either a whole checkpoint or none; the manifest catches later damage (a file
missing, truncated or overwritten), and resuming then falls back to the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"
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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, step: int) -> None:
    """Record the step, then the size and sha256 of every file; the manifest goes last, so its presence means complete."""
    write_json(directory / STATE_FILE, {"step": step})
    files = {
        p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": sha256_of(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    write_json(directory / MANIFEST_FILE, {"files": files})


def checkpoint_problem(directory: Path) -> str | None:
    """Why a checkpoint cannot be trusted (missing manifest, missing, resized or altered file), or None if intact.
    Manifests of earlier versions hold sizes only; those are checked by size."""
    try:
        files = json.loads((directory / MANIFEST_FILE).read_text())["files"]
        json.loads((directory / STATE_FILE).read_text())["step"]
        expected = {name: entry if isinstance(entry, dict) else {"size": int(entry)} for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"unreadable {MANIFEST_FILE} or {STATE_FILE}: {type(error).__name__}"
    for name, entry in expected.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("size"):
            return f"{name} is {path.stat().st_size} bytes, expected {entry.get('size')}"
        if "sha256" in entry and sha256_of(path) != entry["sha256"]:
            return f"{name} does not match its checksum"
    return None


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


def write_json(path: Path, data: dict) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=1))
    os.replace(temp, path)
