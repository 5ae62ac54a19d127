"""User-given pretrained weight files, and the honest result when there are none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed (e.g. no pretrained weights given); reports print `str()`.

    Returned instead of a number so that nothing computed with wrong or random weights reaches a table.
    """

    reason: str

    def __str__(self) -> str:
        return f"unavailable ({self.reason})"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def existing_file(path: str | Path, what: str) -> Path:
    """`path` as a Path, or a UserError naming what the file was for."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist: check the path")
    return path


def load_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch-saved state dict (loaded with weights_only=True)."""
    path = existing_file(path, what)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to parse means the file is not what the user thinks
        raise UserError(f"cannot read {what} file {path} ({_first_line(error)}): give a PyTorch state-dict or safetensors file") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{what} file {path} does not hold a state dict of tensors: give the weights file itself")
    return state


def load_torchscript(path: str | Path, what: str) -> torch.jit.ScriptModule:
    """A TorchScript module from `path`, on the CPU."""
    path = existing_file(path, what)
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch.jit.load raises several unrelated types for a wrong file
        raise UserError(f"cannot load {what} {path} as TorchScript ({_first_line(error)}): give a torch.jit-saved module, e.g. NVIDIA's inception-2015-12-05.pt") from error
