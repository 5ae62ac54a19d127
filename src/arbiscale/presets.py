"""Named model configurations: `tiny` for tests, `small` and `small-wide` for CPU training, and the paper's.

A preset fixes the architecture of every component and the training crop size; training
hyper-parameters given here are defaults that the CLI can override.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import UserError


def _unet(widths: tuple[int, ...], attention: tuple[bool, ...], layers: int, groups: int = 32, head_dim: int = 32) -> dict:
    """Keyword arguments for diffusers' UNet2DModel (channels and sample size are set per task)."""
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
    return dict(block_out_channels=widths, down_block_types=down, up_block_types=up, layers_per_block=layers, norm_num_groups=groups, attention_head_dim=head_dim)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    autoencoder: dict
    unet: dict
    latent_size: tuple[int, int]
    batch_size: int = 16
    autoencoder_lr: float = 1e-4
    ldm_lr: float = 1e-4
    align_lr: float = 1e-5
    # The LIIF baseline: `LIIF` keyword arguments (default: LIIF's EDSR-baseline, 64 channels, 16 blocks) and its lr.
    liif: dict = field(default_factory=dict)
    liif_lr: float = 1e-4

    @property
    def downsample_factor(self) -> int:
        """Image pixels per latent cell of the preset's autoencoder (2 per level after the first), without building it."""
        return 2 ** (len(self.autoencoder["channel_mult"]) - 1)


_SMALL = Preset(
    name="small",
    description="the bundled models' autoencoder and the generators' denoiser: trains on a 2-core CPU in hours, f=4, 16-channel latent",
    autoencoder=dict(base_channels=32, channel_mult=(1, 2, 4), num_res_blocks=1, latent_channels=16, norm_groups=16, head_hidden=(128, 128, 128, 128), latent_skip=True),
    unet=_unet((64, 128, 256), (False, False, True), layers=1, groups=16, head_dim=32),
    latent_size=(16, 16),
    batch_size=8,
    autoencoder_lr=2e-4,
    ldm_lr=2e-4,
    align_lr=2e-5,
)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        description="a few thousand parameters per part, for tests on CPU",
        autoencoder=dict(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, latent_channels=3, norm_groups=8, head_hidden=(64, 64)),
        unet=_unet((32, 64), (False, True), layers=1, groups=8, head_dim=16),
        latent_size=(8, 8),
        batch_size=8,
        autoencoder_lr=1e-3,
        ldm_lr=1e-3,
        align_lr=1e-4,
        liif=dict(channels=16, num_blocks=2, head_hidden=(64, 64)),
        liif_lr=1e-3,
    ),
    "small": _SMALL,
    "small-wide": replace(
        _SMALL,
        name="small-wide",
        description="small's autoencoder with a 1.5x wider denoiser (96-192-384): learns more per step, 1.9x the time per step",
        unet=_unet((96, 192, 384), (False, False, True), layers=1, groups=16, head_dim=32),
        batch_size=16,
    ),
    "paper-celebahq-sr": Preset(
        name="paper-celebahq-sr",
        description="the paper's CelebA-HQ SR: 16x16 -> 128x128, 32x32x32 latent (f=4), UNet 256ch (1,2,4,4)",
        autoencoder=dict(base_channels=128, channel_mult=(1, 2, 4), num_res_blocks=2, latent_channels=32, norm_groups=32),
        unet=_unet((256, 512, 1024, 1024), (True, True, True, False), layers=2),
        latent_size=(32, 32),
        autoencoder_lr=5e-5,
        ldm_lr=1e-6,
        align_lr=1e-6,
    ),
    "paper-div2k-sr": Preset(
        name="paper-div2k-sr",
        description="the paper's DIV2K SR: 48x48 -> 192x192 crops, 48x48x3 latent (f=4), UNet 160ch (1,2,2,4)",
        autoencoder=dict(base_channels=128, channel_mult=(1, 2, 4), num_res_blocks=2, latent_channels=3, norm_groups=32),
        unet=_unet((160, 320, 320, 640), (False, False, True, True), layers=2),
        latent_size=(48, 48),
        autoencoder_lr=5e-5,
        ldm_lr=1e-4,
        align_lr=1e-5,
    ),
    "paper-ffhq-gen": Preset(
        name="paper-ffhq-gen",
        description="the paper's FFHQ generation at 256x256 from a 64x64x3 latent (f=4)",
        autoencoder=dict(base_channels=128, channel_mult=(1, 2, 4), num_res_blocks=2, latent_channels=3, norm_groups=32),
        unet=_unet((224, 448, 672, 896), (False, True, True, True), layers=2),
        latent_size=(64, 64),
        autoencoder_lr=5e-5,
        ldm_lr=1e-4,
        align_lr=1e-5,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a UserError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None
