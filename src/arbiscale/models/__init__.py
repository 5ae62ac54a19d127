"""Networks: the encoder + implicit neural decoder, and the latent UNet."""

from .autoencoder import ImplicitAutoencoder, LatentFeatureDecoder
from .implicit_head import ImplicitHead
from .loading import load_component
from .unet import LatentDenoiser, measure_latent_scale

__all__ = ["ImplicitAutoencoder", "ImplicitHead", "LatentDenoiser", "LatentFeatureDecoder", "load_component", "measure_latent_scale"]
