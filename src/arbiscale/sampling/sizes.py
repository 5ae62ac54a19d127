"""Scale semantics of upsampling: the exact output size, and the latent size the UNet samples.

- Output: an input of (h, w) at scale s gives exactly (round(h * s), round(w * s)); an explicit
  size (H, W) is used as is, whatever its aspect ratio.
- Working latent: the UNet samples a latent of about the output size divided by the autoencoder
  factor f (what the paper does: the LR image is resized to the target size, then encoded). If the
  longer side would exceed `max_latent_side`, both sides shrink by the same factor to fit. Each side
  is then rounded to the nearest multiple of the UNet's size multiple m (at least m, at most the cap).
  Given the input's size, no side falls below the input's own resolution (the cap gives way): a
  large photo keeps its detail in the condition, and sampling tiles when it does not fit in memory.
- The decoder renders that latent directly at the exact output size, over the same [-1, 1] domain,
  so the rounding above (at most m/2 latent cells a side) never shows as a crop or a size error.
  Scales beyond the cap only cost decoder time and, in chunks, bounded memory.
"""

from __future__ import annotations

import math

from ..errors import UserError
from ..geometry import check_output_size, scaled_size


def output_size(input_size: tuple[int, int], scale: float | tuple[float, float] | None = None, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The exact (H, W) to render, from a scale or an explicit size (exactly one of them)."""
    if (scale is None) == (size is None):
        raise UserError("give either a scale or an output size, not both and not neither")
    if size is not None:
        return check_output_size(size)
    try:
        return scaled_size(input_size, scale)
    except (ValueError, TypeError):
        raise UserError(f"scale must be a positive finite number, got {scale}") from None


def _round_side(length: float, multiple: int, cap: int) -> int:
    rounded = max(multiple, round(length / multiple) * multiple)
    return rounded if rounded <= cap else max(multiple, cap // multiple * multiple)


def working_latent_size(out_size: tuple[int, int], downsample_factor: int, size_multiple: int, max_latent_side: int, input_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (h, w) of the latent to sample for an output of `out_size` (see the module docstring); with an
    `input_size`, no side below the input's own resolution (side x factor >= the input's side, or the
    output's where that is smaller), whatever the cap."""
    if max_latent_side < size_multiple:
        raise UserError(f"the maximum latent side must be at least {size_multiple}, got {max_latent_side}")
    height, width = out_size[0] / downsample_factor, out_size[1] / downsample_factor
    shrink = min(1.0, max_latent_side / max(height, width))
    sides = [_round_side(height * shrink, size_multiple, max_latent_side), _round_side(width * shrink, size_multiple, max_latent_side)]
    if input_size is not None:
        for axis, original in enumerate(input_size):
            floor = math.ceil(min(original, out_size[axis]) / downsample_factor / size_multiple) * size_multiple
            sides[axis] = max(sides[axis], floor)
    return sides[0], sides[1]


def check_latent_size(latent_size: tuple[int, int], size_multiple: int) -> tuple[int, int]:
    """A user-given latent size, refused unless both sides are positive multiples of the UNet's multiple."""
    if len(latent_size) != 2 or any(not isinstance(s, int) or s <= 0 or s % size_multiple for s in latent_size):
        raise UserError(f"latent size must be two positive multiples of {size_multiple}, got {tuple(latent_size)}")
    return int(latent_size[0]), int(latent_size[1])
