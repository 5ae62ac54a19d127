"""Stage 1: train the encoder and the implicit neural decoder together to reconstruct at any scale.

Loss: L1 between the decoder's values at random query points and the HR crop resized (antialiased)
to s x the latent size, s ~ U[1, f]; with a Gaussian posterior, the latent is sampled and a small KL
term (LDM's weight, 1e-6 on the KL summed over the latent) keeps its scale bounded.
The same stage with the encoder frozen fine-tunes the decoder alone (`train decoder`), e.g. into
another head. Validation: RGB PSNR of whole decodes of fixed crops at the crop's own size (1x) and at a
non-integer scale of the latent size, against the antialiased-resized crop.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from ..data.crops import ArbitraryScaleCrops
from ..data.images import resize
from ..geometry import scaled_size
from ..metrics.psnr_ssim import psnr
from ..models.autoencoder import ImplicitAutoencoder
from .loop import TrainingTask


class ReconstructionObjective(nn.Module):
    """The autoencoder's training forward in one call (so DDP sees it): values at queries, and the KL or None.

    With `train_encoder=False` the encoder is frozen and only the implicit decoder learns, on the
    encoder's mean latents: the latents, and every denoiser trained on them, stay valid.
    """

    def __init__(self, autoencoder: ImplicitAutoencoder, train_encoder: bool = True) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.train_encoder = train_encoder
        if not train_encoder:
            autoencoder.encoder.requires_grad_(False)
            autoencoder.quant_conv.requires_grad_(False)

    def forward(self, images: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.train_encoder:
            with torch.no_grad():
                latent = self.autoencoder.encode(images)
            return self.autoencoder.decode_at(latent, coord, cell), None
        mean, logvar = self.autoencoder.posterior(images)
        if logvar is None:
            return self.autoencoder.decode_at(mean, coord, cell), None
        posterior = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))
        return self.autoencoder.decode_at(posterior.sample(), coord, cell), posterior.kl().mean()


def validation_crops(paths: list[Path], latent_size: tuple[int, int], downsample_factor: int, count: int = 4, seed: int = 0) -> torch.Tensor:
    """(count, 3, h*f, w*f) fixed crops from `count` photos spread over the list (only those are decoded)."""
    chosen = [paths[i * len(paths) // count] for i in range(count)] if len(paths) > count else paths
    crops = ArbitraryScaleCrops(chosen, latent_size, downsample_factor, length=count, seed=seed, deterministic=True)
    return torch.stack([crops[i]["image"] for i in range(count)])


def default_validation_scale(downsample_factor: int) -> float:
    """Midway between 1x and f x the latent size: 2.5 for f = 4, never an integer for even f."""
    return (1 + downsample_factor) / 2


class AutoencoderTask(TrainingTask):
    """Stage 1 as a `TrainingTask`; saves the bare `ImplicitAutoencoder`."""

    def __init__(
        self,
        autoencoder: ImplicitAutoencoder,
        dataset: ArbitraryScaleCrops,
        validation_images: torch.Tensor,
        validation_scale: float | None = None,
        kl_weight: float = 1e-6,
        train_encoder: bool = True,
    ) -> None:
        self.model = ReconstructionObjective(autoencoder, train_encoder)
        self.dataset = dataset
        self.validation_images = validation_images
        factor = autoencoder.downsample_factor
        self.validation_scale = default_validation_scale(factor) if validation_scale is None else validation_scale
        self.kl_weight = kl_weight

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        predicted, kl = model(batch["image"], batch["coord"], batch["cell"])
        l1 = (predicted.float() - batch["target"].float()).abs().mean()
        if kl is None:
            return l1, {}
        return l1 + self.kl_weight * kl, {"loss_l1": l1.item(), "loss_kl": kl.item()}

    def validate(self, model: nn.Module) -> dict[str, float]:
        autoencoder = model.autoencoder
        images = self.validation_images.to(next(autoencoder.parameters()).device)
        latent = autoencoder.encode(images)
        sizes = {"val_psnr": tuple(images.shape[-2:]), f"val_psnr_{self.validation_scale:g}x_latent": scaled_size(tuple(latent.shape[-2:]), self.validation_scale)}
        return {name: psnr(autoencoder.decode(latent, size), resize(images, size)).mean().item() for name, size in sizes.items()}

    def save(self, model: nn.Module, directory: Path) -> None:
        model.autoencoder.save_pretrained(directory)
