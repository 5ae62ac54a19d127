"""The LIIF baseline (Chen et al. 2021): an EDSR-baseline (or RDN) encoder read by an implicit head.

A regression model: the same LR image and scale always give the same output, the conditional
mean, which wins PSNR and loses sharpness at large scales. It uses the same `ImplicitHead` as our
decoder, with LIIF's settings: 3x3 feature unfolding, local ensemble and cell decoding.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..errors import UserError
from ..geometry import check_output_size
from .implicit_head import ImplicitHead


class ResBlock(nn.Module):
    """EDSR's residual block: conv, ReLU, conv, no normalisation, scaled skip."""

    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSREncoder(nn.Module):
    """EDSR-baseline without its upsampler: features at the LR resolution, for the implicit head."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, res_scale: float) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(channels, res_scale) for _ in range(num_blocks)], nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.head(images)
        return features + self.body(features)


class DenseBlock(nn.Module):
    """RDN's residual dense block: each 3x3 conv + ReLU sees every earlier output; a 1x1 fuses them."""

    def __init__(self, channels: int, growth: int, num_convs: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels + i * growth, growth, 3, padding=1) for i in range(num_convs))
        self.fuse = nn.Conv2d(channels + num_convs * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for conv in self.convs:
            features = torch.cat([features, torch.relu(conv(features))], dim=1)
        return x + self.fuse(features)


class RDNEncoder(nn.Module):
    """RDN (Zhang et al. 2018) without its upsampler: shallow features, `num_blocks` dense blocks,
    global fusion of all their outputs and a global skip; LIIF's strongest published encoder."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, growth: int, num_convs: int) -> None:
        super().__init__()
        self.shallow1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.shallow2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(DenseBlock(channels, growth, num_convs) for _ in range(num_blocks))
        self.global_fuse = nn.Conv2d(num_blocks * channels, channels, 1)
        self.global_conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        shallow = self.shallow1(images)
        x = self.shallow2(shallow)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return self.global_conv(self.global_fuse(torch.cat(outputs, dim=1))) + shallow


ENCODERS = ("edsr-baseline", "rdn")


class LIIF(ModelMixin, ConfigMixin):
    """LR images (B, 3, h, w) in [-1, 1] -> values at any continuous coordinates, any output size."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        image_channels: int = 3,
        channels: int = 64,
        num_blocks: int = 16,
        res_scale: float = 1.0,
        head_hidden: tuple[int, ...] = (256, 256, 256, 256),
        local_ensemble: bool = True,
        feature_unfold: bool = True,
        cell_decode: bool = True,
        encoder_type: str = "edsr-baseline",
        rdn_growth: int = 64,
        rdn_convs: int = 8,
    ) -> None:
        """`encoder_type`: "edsr-baseline" (`num_blocks` ResBlocks) or "rdn" (`num_blocks` dense blocks of
        `rdn_convs` convs growing by `rdn_growth` channels; LIIF's RDN-LIIF: 16, 8, 64)."""
        super().__init__()
        if encoder_type not in ENCODERS:
            raise ValueError(f"encoder_type must be one of {', '.join(ENCODERS)}, got {encoder_type!r}")
        self.encoder = (
            EDSREncoder(image_channels, channels, num_blocks, res_scale)
            if encoder_type == "edsr-baseline"
            else RDNEncoder(image_channels, channels, num_blocks, rdn_growth, rdn_convs)
        )
        self.head = ImplicitHead(channels, tuple(head_hidden), image_channels, local_ensemble, feature_unfold, cell_decode)

    def encode(self, lr_images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) -> (B, channels, h, w) features; any h, w (there is no downsampling)."""
        if lr_images.dim() != 4 or lr_images.shape[1] != self.config.image_channels:
            raise UserError(f"expected images (B, {self.config.image_channels}, h, w) in [-1, 1], got shape {tuple(lr_images.shape)}")
        return self.encoder(lr_images)

    def forward(self, lr_images: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Values (B, Q, 3) at coordinates (B, Q, 2) with cells (B, Q, 2), (B, 2) or (2,)."""
        return self.head(self.encode(lr_images), coord, cell, chunk_size)

    @torch.no_grad()
    def upscale(self, lr_images: torch.Tensor, size: tuple[int, int], chunk_size: int | None = 65536) -> torch.Tensor:
        """Render the LR images at (H, W), any size and aspect ratio, in bands of query points (memory
        beyond the output bounded by `chunk_size`, as for our decoder)."""
        return self.render(self.encode(lr_images), size, chunk_size)

    @torch.no_grad()
    def render(self, features: torch.Tensor, size: tuple[int, int], chunk_size: int | None = 65536) -> torch.Tensor:
        """The encoder's features (however they were computed, e.g. in tiles) rendered at (H, W)."""
        return self.head.render_image(features, check_output_size(tuple(size)), chunk_size).clamp_(-1, 1)
