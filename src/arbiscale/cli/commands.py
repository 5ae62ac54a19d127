"""The list of sub-commands: each entry adds one parser and sets `run` on its namespace."""

from __future__ import annotations

from . import convert, evaluate, generate, serve, train, upscale

REGISTRY: list = [upscale.register, generate.register, train.register, evaluate.register, convert.register, serve.register]
