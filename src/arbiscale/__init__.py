"""arbiscale: arbitrary-scale image upsampling and generation with latent diffusion and an implicit neural decoder."""

__version__ = "0.1.0"
