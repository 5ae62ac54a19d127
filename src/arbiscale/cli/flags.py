"""The one boundary between library and command line for messages: the library names its parameters in
backticks (`max_memory`), the command line shows the flag that sets each (--max-memory)."""

from __future__ import annotations

import re

# Parameters whose flag is not `--` + the name with dashes.
FLAGS = {
    "out_dir": "--out",
    "tile_size": "--tile",
    "baselines": "--baseline",
    "pipe": "--model",
    "split_file": "--split",
    "root": "--data",
    "num_inference_steps": "--steps",
    "path": "--model",
}
_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def as_flags(message: str) -> str:
    """`message` with each backticked parameter name replaced by its command-line flag."""
    return _PARAMETER.sub(lambda match: FLAGS.get(match.group(1), "--" + match.group(1).replace("_", "-")), message)
