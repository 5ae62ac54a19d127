"""`arbiscale train STAGE ...`: one sub-command per training stage, all on the shared training loop.

Adding a stage (e.g. `train ldm`): write `cli/train/<stage>.py` with `register(stages)` that calls
`stages.add_parser(...)`, adds `options.add_run_options(parser, ...)` (and `add_data_options` if it reads
photos), builds its settings with `options.settings_from_args`, and sets `run`; then add it to `STAGES`
below. Stage modules import torch and the training code inside `run`, so `--help` stays fast.

Several processes (DDP): `accelerate launch --multi_gpu --num_processes N -m arbiscale.cli.main train ...`;
on a machine without GPUs, prefix `ACCELERATE_USE_CPU=1` (gloo). `accelerate launch --cpu` starts only
one process unless MPI is set up.
"""

from __future__ import annotations

import argparse

from . import align, align_decoder, autoencoder, decoder, idm, ldm, liif

STAGES = (autoencoder, decoder, ldm, align, align_decoder, liif, idm)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one stage of the model", description="Train one stage of the model; each stage is a sub-command.")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage in STAGES:
        stage.register(stages)
