"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the package writes (images, reports, manifests, metrics, the encoded training pool) goes
through `atomic_path`: a temp file in the target's folder, renamed over the target once complete.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import UserError, notify


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temp path beside `path` to write; renamed to `path` when the block ends without an error, deleted
    otherwise. An existing file is kept unless `overwrite`. Temp files of this name that a killed process
    (SIGKILL, power loss) left are reported, not deleted: one may belong to another process writing the
    same file now."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists: pass `overwrite` to replace it, or choose another name")
    try:  # a folder that is a file, or one we may not write to
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(descriptor)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error}") from None
    try:
        yield Path(temp_name)
        os.chmod(temp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600; give what open() would
        os.replace(temp_name, path)
    except BaseException as error:
        Path(temp_name).unlink(missing_ok=True)
        if isinstance(error, (OSError, ValueError)):
            raise UserError(f"cannot write {path}: {error}") from None
        raise
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    if stale:
        more = f" (+{len(stale) - 1} more)" if len(stale) > 1 else ""
        notify(f"{stale[0]}{more} is left from an interrupted write of {path.name}: delete it once no other process writes there")


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], overwrite: bool = False) -> Path:
    """`write(handle)` into `path` atomically (see `atomic_path`)."""
    with atomic_path(path, overwrite) as temp, open(temp, "wb") as handle:
        write(handle)
    return Path(path)
