"""What our model is measured against: bicubic resizing and the IDM-style diffusion upsampler (SR3-style
UNet at the output resolution with implicit upsampling), kept apart from our own networks in `models`."""

from .bicubic import bicubic_upscale
from .idm import IDMStyleSR

__all__ = ["IDMStyleSR", "bicubic_upscale"]
