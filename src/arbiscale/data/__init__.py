"""Image files and training data: robust loading/saving, and the stage-1 arbitrary-scale crops."""

from .crops import ArbitraryScaleCrops, item_generator, random_crop, random_symmetry, sample_queries
from .images import IMAGE_EXTENSIONS, image_to_tensor, list_images, load_image, load_image_with_alpha, resize, save_image, tensor_to_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "ArbitraryScaleCrops",
    "image_to_tensor",
    "item_generator",
    "list_images",
    "load_image",
    "load_image_with_alpha",
    "random_crop",
    "random_symmetry",
    "resize",
    "sample_queries",
    "save_image",
    "tensor_to_image",
]
