"""LPIPS (Zhang et al. 2018, AlexNet variant) from user-given weight files, without torchvision.

Weights: torchvision's ImageNet AlexNet state dict (`alexnet-owt-7be5be79.pth`, keys features.N.*) and
the lpips package's linear heads (`weights/v0.1/alex.pth`, keys linN.model.1.weight). Both are read
strictly: a file with missing or mis-shaped tensors is an error, never a partly random network.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .weights import Unavailable, load_state_dict

# (in, out, kernel, stride, padding) of AlexNet's five convolutions; max-pools (3, stride 2) follow
# conv 1, 2 and 5. LPIPS taps the ReLU after each convolution.
_ALEXNET_CONVS = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))
_TORCHVISION_INDEX = (0, 3, 6, 8, 10)
# lpips' ScalingLayer: [-1, 1] inputs -> roughly ImageNet-normalised ones.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 31  # smallest side for which the second max-pool still has a 3x3 input


class LPIPS(nn.Module):
    """Perceptual distance (B,) between images (B,3,H,W) in [-1, 1]; 0 for identical images.

    Per tapped layer: unit-normalise features over channels, square the difference, weight channels
    with a 1x1 linear head, average over space; sum over layers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, stride=s, padding=p) for i, o, k, s, p in _ALEXNET_CONVS)
        self.heads = nn.ModuleList(nn.Conv2d(conv.out_channels, 1, 1, bias=False) for conv in self.convs)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs LPIPS compares."""
        x = (images - self.shift) / self.scale
        taps = []
        for index, conv in enumerate(self.convs):
            if index in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            taps.append(x)
        return taps

    def forward(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if images.shape != reference.shape or images.dim() != 4 or images.shape[1] != 3:
            raise UserError(f"LPIPS compares two batches of RGB images of one shape, got {tuple(images.shape)} and {tuple(reference.shape)}")
        if min(images.shape[-2:]) < MIN_SIZE:
            raise UserError(f"LPIPS (AlexNet) needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(images.shape[-2:])}")
        total = images.new_zeros(images.shape[0])
        for head, a, b in zip(self.heads, self.features(images), self.features(reference)):
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + head((a - b).pow(2)).mean(dim=(1, 2, 3))
        return total

    @classmethod
    def from_files(cls, alexnet_path: str | Path, linear_path: str | Path) -> LPIPS:
        """LPIPS with torchvision AlexNet weights and lpips linear-head weights, read strictly."""
        backbone = load_state_dict(alexnet_path, "AlexNet weights")
        heads = load_state_dict(linear_path, "LPIPS linear-head weights")
        state = {}
        missing = []
        for n, index in enumerate(_TORCHVISION_INDEX):
            for part in ("weight", "bias"):
                key = f"features.{index}.{part}"
                if key in backbone:
                    state[f"convs.{n}.{part}"] = backbone[key]
                else:
                    missing.append(key)
        for n in range(len(_ALEXNET_CONVS)):
            key = next((k for k in (f"lin{n}.model.1.weight", f"lins.{n}.model.1.weight") if k in heads), None)
            if key is None:
                missing.append(f"lin{n}.model.1.weight")
            else:
                state[f"heads.{n}.weight"] = heads[key]
        if missing:
            raise UserError(
                f"LPIPS weights incomplete, missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}: "
                "give torchvision's alexnet-owt-7be5be79.pth and lpips' weights/v0.1/alex.pth"
            )
        model = cls()
        expected = model.state_dict()
        wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
        if wrong:
            raise UserError(f"LPIPS weights have the wrong shape for {', '.join(wrong[:4])}: these are not AlexNet / lpips-alex weights")
        model.load_state_dict(state, strict=True)
        return model


def load_lpips(alexnet_path: str | Path | None, linear_path: str | Path | None) -> LPIPS | Unavailable:
    """LPIPS from both weight files, or Unavailable when neither is given (half a pair is an error)."""
    if alexnet_path is None and linear_path is None:
        return Unavailable("no LPIPS weights given; pass the AlexNet (alexnet-owt-7be5be79.pth) and lpips linear-head (alex.pth) files")
    if alexnet_path is None or linear_path is None:
        raise UserError("LPIPS needs both the AlexNet weights file and the lpips linear-head file: give both or neither")
    return LPIPS.from_files(alexnet_path, linear_path)
