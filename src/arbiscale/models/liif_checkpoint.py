"""LIIF's published checkpoints converted into our `LIIF` model, strictly.

LIIF's `train_liif.py` saves `{"model": spec, "optimizer": ..., "epoch": ...}` where spec is
`{"name": "liif", "args": {"encoder_spec": ..., "imnet_spec": ..., ...}, "sd": state_dict}`; the
published EDSR-baseline-LIIF and RDN-LIIF files are such checkpoints. Every key of `sd` is mapped
to one of ours (the head's first linear layer, over [feature, relative offset, relative cell], is
split into our per-cell feature projection and per-query geometry projection), every shape is
checked, and a missing, unexpected or mis-shaped key is refused by name. The only keys dropped are
EDSR's mean-shift constants (`sub_mean`, `add_mean`): LIIF's EDSR forward never applies them.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import CheckpointMismatchError, UserError
from .liif import LIIF

# RDN sizes by LIIF's `RDNconfig`: (dense blocks, convs per block, growth).
RDN_CONFIGS = {"A": (20, 6, 32), "B": (16, 8, 64)}
_FIRST_LAYER = "imnet.layers.0.weight"
_UNUSED = re.compile(r"encoder\.(sub_mean|add_mean)\.(weight|bias)")
# Our key -> LIIF's, for every parameter but the split first layer.
_RENAMES = [
    (r"^encoder\.head\.", "encoder.head.0."),
    (r"^encoder\.shallow1\.", "encoder.SFENet1."),
    (r"^encoder\.shallow2\.", "encoder.SFENet2."),
    (r"^encoder\.blocks\.(\d+)\.convs\.(\d+)\.", r"encoder.RDBs.\1.convs.\2.conv.0."),
    (r"^encoder\.blocks\.(\d+)\.fuse\.", r"encoder.RDBs.\1.LFF."),
    (r"^encoder\.global_fuse\.", "encoder.GFF.0."),
    (r"^encoder\.global_conv\.", "encoder.GFF.1."),
    (r"^head\.feature_proj\.bias$", "imnet.layers.0.bias"),
]


def _their_key(ours: str) -> str:
    for pattern, replacement in _RENAMES:
        if re.search(pattern, ours):
            return re.sub(pattern, replacement, ours)
    mlp = re.fullmatch(r"head\.mlp\.(\d+)\.(weight|bias)", ours)
    if mlp:  # our MLP is [ReLU, Linear, ReLU, Linear, ...] after the first layer; LIIF's [Linear, ReLU, ...]
        return f"imnet.layers.{int(mlp.group(1)) + 1}.{mlp.group(2)}"
    return ours


def liif_config(spec: dict) -> dict:
    """Our `LIIF` keyword arguments for a LIIF model spec (its `name` and `args`)."""
    if spec.get("name") != "liif":
        raise UserError(f"the checkpoint holds a {spec.get('name')!r} model, not 'liif': only LIIF checkpoints convert")
    args = spec.get("args") or {}
    encoder = args.get("encoder_spec") or {}
    encoder_args = encoder.get("args") or {}
    imnet = args.get("imnet_spec") or {}
    if not encoder_args.get("no_upsampling", False):
        raise UserError("the checkpoint's encoder has its own upsampler (no_upsampling false): LIIF checkpoints use no_upsampling: true")
    if imnet.get("name") != "mlp":
        raise UserError(f"the checkpoint's head is {imnet.get('name')!r}, not LIIF's 'mlp'")
    imnet_args = imnet.get("args") or {}
    config = dict(
        head_hidden=tuple(imnet_args.get("hidden_list", (256, 256, 256, 256))),
        local_ensemble=args.get("local_ensemble", True),
        feature_unfold=args.get("feat_unfold", True),
        cell_decode=args.get("cell_decode", True),
    )
    if imnet_args.get("out_dim", 3) != 3:
        raise UserError(f"the checkpoint's head outputs {imnet_args['out_dim']} channels, not 3 (RGB)")
    if encoder.get("name") == "edsr-baseline":
        return config | dict(
            encoder_type="edsr-baseline", channels=encoder_args.get("n_feats", 64), num_blocks=encoder_args.get("n_resblocks", 16), res_scale=encoder_args.get("res_scale", 1)
        )
    if encoder.get("name") == "rdn":
        if encoder_args.get("RDNkSize", 3) != 3 or encoder_args.get("RDNconfig", "B") not in RDN_CONFIGS:
            raise UserError("the checkpoint's RDN is not a 3x3 RDN of config A or B, the sizes LIIF publishes")
        blocks, convs, growth = RDN_CONFIGS[encoder_args.get("RDNconfig", "B")]
        return config | dict(encoder_type="rdn", channels=encoder_args.get("G0", 64), num_blocks=blocks, rdn_convs=convs, rdn_growth=growth)
    raise UserError(f"the checkpoint's encoder is {encoder.get('name')!r}: edsr-baseline and rdn convert")


def convert_state_dict(model: LIIF, theirs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict for `model` from LIIF's `sd`, refusing any key left over, missing or mis-shaped."""
    ours = model.state_dict()
    expected = {_their_key(key): value for key, value in ours.items() if key not in ("head.feature_proj.weight", "head.geometry_proj.weight")}
    feature_proj, geometry_proj = ours["head.feature_proj.weight"], ours["head.geometry_proj.weight"]
    expected[_FIRST_LAYER] = torch.empty(feature_proj.shape[0], feature_proj.shape[1] + geometry_proj.shape[1])
    for key in theirs:
        if key not in expected and not _UNUSED.fullmatch(key):
            raise CheckpointMismatchError(f"unexpected key {key} in the checkpoint: it is not part of a LIIF of this configuration")
    for key, value in expected.items():
        if key not in theirs:
            raise CheckpointMismatchError(f"missing key {key} in the checkpoint: the file is incomplete or of another model")
        if tuple(theirs[key].shape) != tuple(value.shape):
            raise CheckpointMismatchError(f"key {key} has shape {tuple(theirs[key].shape)} in the checkpoint, the configuration needs {tuple(value.shape)}")
    converted = {key: theirs[_their_key(key)] for key in ours if key not in ("head.feature_proj.weight", "head.geometry_proj.weight")}
    first = theirs[_FIRST_LAYER]
    converted["head.feature_proj.weight"] = first[:, : feature_proj.shape[1]].reshape(feature_proj.shape)
    converted["head.geometry_proj.weight"] = first[:, feature_proj.shape[1] :]
    return {key: value.detach().to(torch.float32).clone() for key, value in converted.items()}


def load_liif_checkpoint(path: str | Path) -> LIIF:
    """Our `LIIF` from one of LIIF's `.pth` checkpoints (its "model" entry), outputs equal to LIIF's."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: give the .pth file LIIF's training saved (e.g. epoch-last.pth)")
    try:  # weights_only: a pickle can run code, and a checkpoint needs no more than dicts and tensors
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpicklable or foreign file
        raise UserError(f"cannot read {path} as a PyTorch checkpoint ({type(error).__name__}): give LIIF's .pth file") from None
    spec = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("sd"), dict):
        raise UserError(f"{path} has no LIIF model entry (a 'model' dict with 'name', 'args' and 'sd'): give the checkpoint LIIF's train_liif.py saved")
    model = LIIF(**liif_config(spec))
    model.load_state_dict(convert_state_dict(model, spec["sd"]), strict=True)
    return model.eval()
