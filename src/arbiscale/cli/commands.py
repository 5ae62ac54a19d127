"""The list of sub-commands: each entry adds one parser and sets `run` on its namespace."""

from __future__ import annotations

from . import evaluate, generate, train, upscale

REGISTRY: list = [upscale.register, generate.register, train.register, evaluate.register]
