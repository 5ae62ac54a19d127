"""Content manifests: the size and sha256 of every file in a folder, written last and checked on read.

Training checkpoints carry one (`training.checkpoints`), and so does each bundled model folder
(written by scripts/export_default_model.py, checked when `from_pretrained()` loads it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .files import write_atomic

MANIFEST_FILE = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Record every file's size and sha256 in directory/manifest.json (atomically, after the files)."""
    files = {
        p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": sha256_of(p)} for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE
    }
    write_json(directory / MANIFEST_FILE, {"files": files})


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (`files.write_atomic`), replacing the file."""
    write_atomic(path, lambda handle: handle.write(json.dumps(data, indent=1).encode("utf-8")), overwrite=True)


def manifest_problem(directory: Path) -> str | None:
    """Why the folder does not match its manifest (unreadable manifest, missing, resized or altered file), or None.
    Entries of earlier checkpoint manifests hold sizes only; those are checked by size."""
    try:
        files = json.loads((directory / MANIFEST_FILE).read_text())["files"]
        expected = {name: entry if isinstance(entry, dict) else {"size": int(entry)} for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"unreadable {MANIFEST_FILE}: {type(error).__name__}"
    for name, entry in expected.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("size"):
            return f"{name} is {path.stat().st_size} bytes, expected {entry.get('size')}"
        if "sha256" in entry and sha256_of(path) != entry["sha256"]:
            return f"{name} does not match its checksum"
    return None
