"""The IDM-style baseline: image-space diffusion whose UNet upsamples by implicit coordinate queries.

After IDM (Gao et al. 2023): an SR3-style UNet denoises the image at the output resolution, seeing
the LR image resized (bicubic) to that resolution beside the noisy image. Its decoder replaces each
upsampling layer by an implicit head that renders the features at the next level's exact size
(so any H x W works, odd sides included), and the scale factor is embedded next to the timestep
(scale-adaptive conditioning). Every denoising step therefore runs at the full output resolution,
which is the cost our latent model avoids. Widths and blocks follow a preset's UNet so that the two
can be compared at equal width, and it trains on the objective our denoiser uses (`objective`, by
default v-prediction on a zero-terminal-SNR schedule: IDM's own epsilon-prediction cannot start from
pure noise), so the comparison is of the architectures, not of the noise schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, get_down_block, get_up_block
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import nn

from ..choices import DEFAULT_SAMPLING
from ..errors import UserError
from ..geometry import cell_size, check_output_size, coord_grid, resize
from ..models.implicit_head import ImplicitHead
from ..pipelines.consistency import enforce_low_res_consistency
from ..pipelines.memory import check_free
from ..pipelines.upscale import UpscalePipeline
from ..presets import Preset, get_preset
from ..sampling.sample import Generator, sample_latents
from ..sampling.schedulers import OBJECTIVES, make_scheduler

# Peak activation memory of a denoising step per output pixel and sample, measured on the `small`
# preset's widths (64 at full resolution: +700 MB from 256x256 to 512x512); it scales with that width.
ACTIVATION_BYTES_PER_PIXEL = 4096


def render(head: ImplicitHead, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Implicit upsampling: (B, C, h, w) features -> (B, C', H, W) by querying every pixel centre."""
    batch = features.shape[0]
    coord = coord_grid(size, features.device).unsqueeze(0).expand(batch, -1, -1)
    values = head(features, coord, cell_size(size, features.device))
    return values.transpose(1, 2).reshape(batch, -1, *size)


class IDMStyleSR(ModelMixin, ConfigMixin):
    """eps_hat = UNet([x_t, bicubic(LR)], t, scale), all at the output resolution (H, W)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        image_channels: int = 3,
        block_out_channels: tuple[int, ...] = (64, 128, 256),
        down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        layers_per_block: int = 1,
        norm_num_groups: int = 16,
        attention_head_dim: int = 32,
        implicit_hidden_layers: int = 2,
        objective: str = "v-zero-snr",
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise UserError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
        widths = list(block_out_channels)
        temb = widths[0] * 4
        common = {"temb_channels": temb, "resnet_eps": 1e-5, "resnet_act_fn": "silu", "resnet_groups": norm_num_groups, "attention_head_dim": attention_head_dim}
        self.conv_in = nn.Conv2d(2 * image_channels, widths[0], 3, padding=1)
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(widths[0], temb)
        self.scale_embedding = TimestepEmbedding(2, temb)  # MLP on (log scale_h, log scale_w)
        self.down_blocks = nn.ModuleList(
            get_down_block(
                kind, num_layers=layers_per_block, in_channels=widths[max(i - 1, 0)], out_channels=width, add_downsample=i < len(widths) - 1, downsample_padding=1, **common
            )
            for i, (kind, width) in enumerate(zip(down_block_types, widths))
        )
        self.mid_block = UNetMidBlock2D(widths[-1], temb, resnet_eps=1e-5, resnet_groups=norm_num_groups, attention_head_dim=attention_head_dim)
        reversed_widths = widths[::-1]
        self.up_blocks = nn.ModuleList(
            get_up_block(
                kind,
                num_layers=layers_per_block + 1,
                in_channels=reversed_widths[min(i + 1, len(widths) - 1)],
                out_channels=width,
                prev_output_channel=reversed_widths[max(i - 1, 0)],
                add_upsample=False,
                **common,
            )
            for i, (kind, width) in enumerate(zip(up_block_types, reversed_widths))
        )
        self.upsamplers = nn.ModuleList(
            ImplicitHead(width, (width,) * implicit_hidden_layers, width, local_ensemble=True, feature_unfold=False, cell_decode=True) for width in reversed_widths[:-1]
        )
        self.norm_out = nn.GroupNorm(norm_num_groups, widths[0], eps=1e-5)
        self.conv_out = nn.Conv2d(widths[0], image_channels, 3, padding=1)

    @classmethod
    def from_preset(cls, preset: str | Preset) -> IDMStyleSR:
        """A fresh model with the same UNet widths, blocks and attention as a preset's latent UNet."""
        preset = get_preset(preset) if isinstance(preset, str) else preset
        return cls(**preset.unet)

    def noise_schedule(self, sampler: str = "ddpm") -> SchedulerMixin:
        """A fresh scheduler of kind `sampler` on the schedule of the model's `objective`."""
        return make_scheduler(sampler, **OBJECTIVES[self.config.objective])

    def forward(self, noisy_images: torch.Tensor, timestep: torch.Tensor | int, lr_images: torch.Tensor, lr_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The objective's prediction (B, 3, H, W) for noisy images at the output size, given the LR images (B, 3, h, w).

        `lr_scale` (B, 2): the output's sides over the LR's; by default the ratio of the tensors' sizes.
        Training passes it with LR images already resized to the output size (so a batch can mix scales).
        """
        if lr_images.dim() != 4 or lr_images.shape[:2] != noisy_images.shape[:2]:
            raise UserError(f"expected LR images (B, 3, h, w) matching the noisy batch {tuple(noisy_images.shape[:2])}, got {tuple(lr_images.shape)}")
        batch, size = noisy_images.shape[0], tuple(noisy_images.shape[-2:])
        if lr_scale is None:
            lr_scale = torch.tensor([size[0] / lr_images.shape[-2], size[1] / lr_images.shape[-1]], device=noisy_images.device).expand(batch, 2)
        timestep = torch.as_tensor(timestep, device=noisy_images.device).reshape(-1).expand(batch)
        emb = self.time_embedding(self.time_proj(timestep).to(noisy_images.dtype))
        emb = emb + self.scale_embedding(lr_scale.to(emb.device, emb.dtype).log())
        sample = self.conv_in(torch.cat([noisy_images, resize(lr_images, size).to(noisy_images.dtype)], dim=1))
        skips = (sample,)
        for block in self.down_blocks:
            sample, states = block(hidden_states=sample, temb=emb)
            skips += states
        sample = self.mid_block(sample, emb)
        for index, block in enumerate(self.up_blocks):
            count = len(block.resnets)
            sample, skips = block(sample, skips[-count:], emb), skips[:-count]
            if index < len(self.upsamplers):
                sample = render(self.upsamplers[index], sample, tuple(skips[-1].shape[-2:]))
        return self.conv_out(nn.functional.silu(self.norm_out(sample)))

    @torch.no_grad()
    def upscale(
        self,
        lr_images: torch.Tensor,
        size: tuple[int, int],
        num_inference_steps: int = DEFAULT_SAMPLING["num_inference_steps"],
        sampler: str = DEFAULT_SAMPLING["sampler"],
        eta: float | None = None,
        generator: Generator = None,
        progress_bar: Callable[[Iterable], Iterable] | None = None,
        lr_consistency: bool = DEFAULT_SAMPLING["lr_consistency"],
        strength: float = DEFAULT_SAMPLING["strength"],
    ) -> torch.Tensor:
        """Sample (B, 3, H, W) images at the output size, every step at full resolution, with our upscaler's
        sampling options and defaults (DDIM without an eta: the upscaler's, `UpscalePipeline.resolve_eta`), so that the two compare
        at equal settings: `strength` < 1 starts from the bicubic-upsampled input noised to that fraction
        of the schedule, `lr_consistency` corrects the output's low frequencies towards the input. With a
        list of generators, one per LR image, each output is fixed by its own seed."""
        height, width = check_output_size(tuple(size))
        shape = (lr_images.shape[0], self.config.image_channels, height, width)
        need = ACTIVATION_BYTES_PER_PIXEL * self.config.block_out_channels[0] // 64 * lr_images.shape[0] * height * width
        check_free(need, self.device, f"the IDM-style model at {width}x{height} x {lr_images.shape[0]}", "ask for a smaller size or fewer samples")
        lr_images = lr_images.to(self.device, torch.float32)
        eta = UpscalePipeline.resolve_eta(sampler, eta)
        scheduler = self.noise_schedule(sampler)
        upscaled = resize(lr_images, (height, width))
        images = sample_latents(self, scheduler, shape, lr_images.to(self.dtype), num_inference_steps, eta, generator, progress_bar, start=upscaled, strength=strength).clamp_(
            -1, 1
        )
        return enforce_low_res_consistency(images, lr_images) if lr_consistency else images
