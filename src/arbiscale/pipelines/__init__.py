"""Inference pipelines in the diffusers style: upscale to any scale, generate at any size."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .base import LatentImplicitPipeline, bundled_model_dir
from .generate import GenerationOutput, GenerationPipeline
from .upscale import UpscaleOutput, UpscalePipeline

PIPELINE_CLASSES: dict[str, type[LatentImplicitPipeline]] = {cls.__name__: cls for cls in (UpscalePipeline, GenerationPipeline)}


def load_pipeline(path: str | Path) -> LatentImplicitPipeline:
    """Whichever pipeline a saved folder holds (its model_index.json names the class)."""
    index_file = Path(path) / "model_index.json"
    try:
        class_name = json.loads(index_file.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError):
        raise UserError(f"no readable model_index.json in {path}: pass a folder written by save_pretrained") from None
    if class_name not in PIPELINE_CLASSES:
        raise UserError(f"{path} holds a {class_name!r}, not one of {', '.join(PIPELINE_CLASSES)}")
    return PIPELINE_CLASSES[class_name].from_pretrained(path)


__all__ = ["GenerationOutput", "GenerationPipeline", "UpscaleOutput", "UpscalePipeline", "bundled_model_dir", "load_pipeline"]
