"""The first stage: a convolutional encoder to a latent, and the implicit neural decoder (IND).

The IND is the auto-encoder's decoder with its upsampling layers removed (so it stays at latent
resolution) followed by the implicit head, which renders the latent at any (H, W).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.autoencoders.vae import Encoder
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, UpDecoderBlock2D
from torch import nn

from .implicit_head import ImplicitHead


class LatentFeatureDecoder(nn.Module):
    """D_phi: conv_in, mid block, per-level ResBlocks, all at latent resolution (no upsampling).

    With `latent_skip` the latent itself is appended to the output features, so the head also has
    the short path that the "MLP only" ablation shows learns fastest from scratch.
    """

    def __init__(self, latent_channels: int, block_channels: list[int], num_res_blocks: int, norm_groups: int, mid_attention: bool, latent_skip: bool = False) -> None:
        super().__init__()
        self.latent_skip = latent_skip
        self.out_channels = block_channels[0] + (latent_channels if latent_skip else 0)
        top = block_channels[-1]
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.conv_in = nn.Conv2d(latent_channels, top, 3, padding=1)
        self.mid = UNetMidBlock2D(in_channels=top, temb_channels=None, resnet_groups=norm_groups, add_attention=mid_attention, attention_head_dim=top)
        blocks = []
        width_in = top
        for width_out in reversed(block_channels):
            blocks.append(
                UpDecoderBlock2D(in_channels=width_in, out_channels=width_out, num_layers=num_res_blocks + 1, resnet_groups=norm_groups, add_upsample=False, temb_channels=None)
            )
            width_in = width_out
        self.blocks = nn.ModuleList(blocks)
        self.norm_out = nn.GroupNorm(norm_groups, block_channels[0], eps=1e-6)
        self.conv_out = nn.Conv2d(block_channels[0], block_channels[0], 3, padding=1)
        self._zero_residual_branches()

    def _zero_residual_branches(self) -> None:
        """Start every ResBlock and attention block as the identity, so that a D_phi trained from
        scratch begins as a shallow conv path and deepens, instead of lagging the "MLP only" arm."""
        for module in self.modules():
            if isinstance(module, ResnetBlock2D):
                nn.init.zeros_(module.conv2.weight)
                nn.init.zeros_(module.conv2.bias)
            elif isinstance(module, Attention):
                nn.init.zeros_(module.to_out[0].weight)
                nn.init.zeros_(module.to_out[0].bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        hidden = self.mid(self.conv_in(self.post_quant_conv(latent)))
        for block in self.blocks:
            hidden = block(hidden)
        features = self.conv_out(nn.functional.silu(self.norm_out(hidden)))
        return torch.cat([features, latent], dim=1) if self.latent_skip else features


class ImplicitAutoencoder(ModelMixin, ConfigMixin):
    """Encoder E and implicit decoder (D_phi + f_theta); images are (B, 3, H, W) in [-1, 1]."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        image_channels: int = 3,
        base_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 2,
        latent_channels: int = 3,
        gaussian_posterior: bool = False,
        norm_groups: int = 32,
        mid_attention: bool = True,
        head_hidden: tuple[int, ...] = (256, 256, 256, 256),
        local_ensemble: bool = True,
        feature_unfold: bool = False,
        cell_decode: bool = True,
        use_feature_decoder: bool = True,
        latent_skip: bool = False,
        head_blend: str = "outputs",
    ) -> None:
        super().__init__()
        block_channels = [base_channels * m for m in channel_mult]
        self.encoder = Encoder(
            in_channels=image_channels,
            out_channels=latent_channels,
            down_block_types=("DownEncoderBlock2D",) * len(channel_mult),
            block_out_channels=tuple(block_channels),
            layers_per_block=num_res_blocks,
            norm_num_groups=norm_groups,
            double_z=gaussian_posterior,
            mid_block_add_attention=mid_attention,
        )
        moments = 2 * latent_channels if gaussian_posterior else latent_channels
        self.quant_conv = nn.Conv2d(moments, moments, 1)
        # use_feature_decoder=False is the paper's "MLP only" ablation: the head reads the latent itself.
        self.feature_decoder = (
            LatentFeatureDecoder(latent_channels, block_channels, num_res_blocks, norm_groups, mid_attention, latent_skip) if use_feature_decoder else nn.Identity()
        )
        head_channels = self.feature_decoder.out_channels if use_feature_decoder else latent_channels
        self.head = ImplicitHead(head_channels, tuple(head_hidden), image_channels, local_ensemble, feature_unfold, cell_decode, head_blend)

    @property
    def downsample_factor(self) -> int:
        """Image pixels per latent cell along each axis."""
        return 2 ** (len(self.config.channel_mult) - 1)

    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean and log-variance of the latent (log-variance None without a Gaussian posterior)."""
        moments = self.quant_conv(self.encoder(images))
        if not self.config.gaussian_posterior:
            return moments, None
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W), H and W multiples of the downsample factor -> latent (B, z, H/f, W/f):
        the posterior's mean (training samples around it, `training.autoencoder`)."""
        return self.posterior(images)[0]

    def decode_at(self, latent: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Values (B, Q, 3) of the image the latent describes, at coordinates (B, Q, 2) with cells."""
        return self.head(self.feature_decoder(latent), coord, cell, chunk_size)

    def decode(self, latent: torch.Tensor, size: tuple[int, int], chunk_size: int | None = 65536, out: torch.Tensor | None = None) -> torch.Tensor:
        """Render the latent as a (B, 3, H, W) float32 image of any size, into `out` when given (e.g.
        one image's slice of a batch). Rendered in bands of rows (`ImplicitHead.render`), so memory
        beyond the image itself is bounded by `chunk_size` and does not grow with (H, W)."""
        return self.head.render_image(self.feature_decoder(latent), size, chunk_size, out)


def with_head_blend(autoencoder: ImplicitAutoencoder, blend: str) -> ImplicitAutoencoder:
    """A copy of `autoencoder` whose head blends its ensemble by `blend` (`implicit_head.BLENDS`),
    with every weight carried over; the "first-layer" head's phase term starts at zero, so the copy
    starts as the blended version of the original and is then fine-tuned (`train decoder`)."""
    config = {key: value for key, value in autoencoder.config.items() if not key.startswith("_")}
    converted = ImplicitAutoencoder(**{**config, "head_blend": blend})
    missing, unexpected = converted.load_state_dict(autoencoder.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"converting to head_blend={blend!r} would drop trained weights ({', '.join(unexpected)})")
    if any(not key.startswith("head.phase_proj.") for key in missing):
        raise ValueError(f"weights missing after converting to head_blend={blend!r}: {', '.join(missing)}")
    return converted.to(next(autoencoder.parameters()).device)
