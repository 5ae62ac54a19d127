"""`arbiscale convert liif CHECKPOINT -o DIR`: a published LIIF checkpoint as our LIIF model folder.

The folder (config.json + safetensors) is what `train liif` writes, so `arbiscale upscale --model DIR`
and `arbiscale eval sr --model DIR` run it like our own LIIF baseline, with banded rendering of any
output size. The conversion is strict: every key mapped, every shape checked (models.liif_checkpoint).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert other tools' checkpoints into model folders", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="convert_kind", required=True, metavar="KIND")
    liif = kinds.add_parser(
        "liif",
        help="a LIIF checkpoint (EDSR-baseline-LIIF or RDN-LIIF .pth) -> LIIF model folder",
        description="Convert a checkpoint saved by LIIF's train_liif.py (its 'model' entry: EDSR-baseline or RDN encoder "
        "plus MLP head) into a LIIF model folder for `upscale --model` and `eval sr --model`.",
    )
    liif.add_argument("checkpoint", metavar="CHECKPOINT", help="the .pth file, e.g. edsr-baseline-liif.pth or rdn-liif.pth")
    liif.add_argument("-o", "--output", required=True, metavar="DIR", help="model folder to write (config.json + safetensors)")
    liif.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    liif.set_defaults(run=run_liif)


def run_liif(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from ..models.liif_checkpoint import load_liif_checkpoint
    from ..training.checkpoints import publish

    target = Path(args.output)
    if target.exists() and not args.overwrite:
        raise UserError(f"{target} already exists: pass --overwrite to replace it, or choose another -o")
    model = load_liif_checkpoint(args.checkpoint)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    encoder = model.config.encoder_type
    print(f"{args.checkpoint} -> {target} (LIIF, {encoder} encoder, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    return 0
