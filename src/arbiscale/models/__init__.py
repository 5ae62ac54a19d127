"""Networks: the encoder + implicit neural decoder, and the latent UNet."""

from .autoencoder import ImplicitAutoencoder, LatentFeatureDecoder
from .implicit_head import ImplicitHead, neighbour_weights
from .loading import load_component

__all__ = ["ImplicitAutoencoder", "ImplicitHead", "LatentFeatureDecoder", "load_component", "neighbour_weights"]
