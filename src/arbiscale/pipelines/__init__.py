"""Inference pipelines in the diffusers style: upscale to any scale, generate at any size."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .base import LatentImplicitPipeline, bundled_model_dir, read_model_index
from .generate import GenerationOutput, GenerationPipeline
from .upscale import UpscaleOutput, UpscalePipeline

PIPELINE_CLASSES: dict[str, type[LatentImplicitPipeline]] = {cls.__name__: cls for cls in (UpscalePipeline, GenerationPipeline)}
# The pipeline that serves a denoiser of each task ("sr", "gen").
PIPELINE_FOR_TASK: dict[str, type[LatentImplicitPipeline]] = {cls.task: cls for cls in PIPELINE_CLASSES.values()}


def load_pipeline(path: str | Path) -> LatentImplicitPipeline:
    """Whichever pipeline a saved folder holds (its model_index.json names the class), or the bundled model
    `path` names (bundled names are unique across pipelines)."""
    for cls in PIPELINE_CLASSES.values():
        if cls.bundled_path(path) is not None:
            return cls.from_pretrained(path)
    class_name = read_model_index(Path(path)).get("_class_name")
    if class_name not in PIPELINE_CLASSES:
        raise UserError(f"{path} holds a {class_name!r}, not one of {', '.join(PIPELINE_CLASSES)}")
    return PIPELINE_CLASSES[class_name].from_pretrained(path)


__all__ = ["PIPELINE_FOR_TASK", "GenerationOutput", "GenerationPipeline", "UpscaleOutput", "UpscalePipeline", "bundled_model_dir", "load_pipeline"]
