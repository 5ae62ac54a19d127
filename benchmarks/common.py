"""What every benchmark script shares: the machine's name for its header, and publishing its table.

The scripts run as `python benchmarks/NAME.py`, so this folder is on sys.path and `from common import ...` works.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

from arbiscale.evaluation.report import write_text


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def publish(text: str, output: str | None) -> None:
    """Print the result and, when `--output` was given, also write it there (atomically, replacing it)."""
    print(text)
    if output:
        write_text(Path(output), text, overwrite=True)
