"""Strict loading of saved components: a checkpoint that does not fit its model is an error."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from diffusers.models.modeling_utils import ModelMixin

from ..errors import CheckpointMismatchError, UserError

ModelT = TypeVar("ModelT", bound=ModelMixin)


def _listing(keys: list, limit: int = 5) -> str:
    shown = ", ".join(str(k) for k in sorted(keys)[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_component(model_class: type[ModelT], path: str | Path) -> ModelT:
    """`from_pretrained` from a local folder, refusing missing, unexpected or mis-shaped weights."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"no saved {model_class.__name__} at {path}: expected config.json and safetensors weights (written by save_pretrained)")
    try:
        # Mismatched shapes are collected into `info` (instead of stopping at the first) and named in one line
        # below, so diffusers' multi-line warning about them is silenced.
        with _quiet(logging.getLogger(ModelMixin.__module__)):
            model, info = model_class.from_pretrained(path, output_loading_info=True, local_files_only=True, ignore_mismatched_sizes=True)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError, ArithmeticError) as error:  # e.g. norm_num_groups 0
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointMismatchError(f"cannot load {model_class.__name__} from {path}: {first_line}") from error
    problems = []
    if info["missing_keys"]:
        problems.append(f"missing {_listing(info['missing_keys'])}")
    if info["unexpected_keys"]:
        problems.append(f"unexpected {_listing(info['unexpected_keys'])}")
    if info.get("mismatched_keys"):
        problems.append(f"wrong shape {_listing([k[0] if isinstance(k, tuple) else k for k in info['mismatched_keys']])}")
    if problems:
        raise CheckpointMismatchError(f"weights in {path} do not match its config.json ({'; '.join(problems)}): re-save the model or fix the config")
    return model.eval()
