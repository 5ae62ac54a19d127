"""Encoding and decoding of images too large for one pass, in tiles that join without seams.

Both halves of the autoencoder are stacks of convolutions (local, with a bounded reach) except for
two parts that see the whole map:
- GroupNorm takes its statistics over the whole map. Here every tile is normalised with one shared
  set of statistics, pooled over the tile *cores* (the disjoint parts the tiles own) in a first
  pass. When that pass holds every tile (`stat_tiles`), they are exactly the whole map's statistics;
  otherwise an even sample of tiles estimates them. Either way all tiles use the same ones, so the
  network is translation-equivariant and a tile computed with a halo as wide as its reach gives, in
  its core, exactly what the whole network gives there.
- The mid blocks' self-attention, where the config has it, only sees the tile's window (core and
  halo). This is the one approximation left; a map that fits in one window is not tiled at all.
Decoding then needs no blending: D_phi's features are exact around each core, and the implicit head
renders the output pixels whose centres lie in that core from those features at the pixels' global
coordinates, so neighbouring tiles meet without seams by construction.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..models.autoencoder import ImplicitAutoencoder


@dataclass(frozen=True)
class Window:
    """A tile: the `rows` x `cols` window a network runs on, and the core it owns inside it."""

    rows: slice
    cols: slice
    core_rows: slice
    core_cols: slice

    def core_box(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the core in window coordinates."""
        return (self.core_rows.start - self.rows.start, self.core_rows.stop - self.rows.start, self.core_cols.start - self.cols.start, self.core_cols.stop - self.cols.start)

    def scaled(self, factor: int) -> "Window":
        """The same window in units `factor` times finer (latent cells -> image pixels)."""
        return Window(*(slice(part.start * factor, part.stop * factor) for part in (self.rows, self.cols, self.core_rows, self.core_cols)))


def core_spans(length: int, tile: int) -> list[tuple[int, int]]:
    """The fewest near-equal disjoint spans of at most `tile` cells covering [0, length)."""
    count = math.ceil(length / tile)
    bounds = [round(index * length / count) for index in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def tile_windows(size: tuple[int, int], tile: int, halo: int) -> list[Window]:
    """Row-major windows of one common size: each core widened by at least `halo` cells on every
    side that is not the map's border (windows slide inward at the borders instead of shrinking)."""
    axes = []
    for length in size:
        spans = core_spans(length, tile)
        window = min(length, max(stop - start for start, stop in spans) + 2 * halo)
        axes.append([(min(max(start - halo, 0), length - window), start, stop, window) for start, stop in spans])
    return [
        Window(slice(top, top + height), slice(left, left + width), slice(row_start, row_stop), slice(col_start, col_stop))
        for top, row_start, row_stop, height in axes[0]
        for left, col_start, col_stop, width in axes[1]
    ]


def receptive_radius(network: nn.Module) -> int:
    """An upper bound, in input cells, on how far the convolutions of `network` reach (attention aside).

    Convolutions are taken as one chain in registration order, which bounds every residual path.
    """
    radius, stride = 0, 1
    for conv in (module for module in network.modules() if isinstance(module, nn.Conv2d)):
        reach = max(conv.padding[0], conv.kernel_size[0] - 1 - conv.padding[0]) * conv.dilation[0]
        radius += reach * stride
        stride *= conv.stride[0]
    return radius


class SharedGroupNorms:
    """Makes every GroupNorm of a network use one set of statistics for all tiles of a map."""

    def __init__(self, network: nn.Module) -> None:
        self.norms = [module for module in network.modules() if isinstance(module, nn.GroupNorm)]
        self.stats: dict[nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]] = {}

    @contextlib.contextmanager
    def _patched(self, forward) -> Iterator[None]:
        for norm in self.norms:
            norm.forward = functools.partial(forward, norm)
        try:
            yield
        finally:
            for norm in self.norms:
                del norm.forward

    def recording(self, windows: list[Window], input_size: tuple[int, int]) -> contextlib.AbstractContextManager:
        """Run a batch of these windows (of `input_size` each) to pool the statistics over their cores."""
        boxes = [window.core_box() for window in windows]

        def forward(norm: nn.GroupNorm, hidden: torch.Tensor) -> torch.Tensor:
            # (B, C, H, W) maps, or (B, C, H * W) tokens inside attention: find the layer's stride.
            stride = round(math.sqrt(input_size[0] * input_size[1] / math.prod(hidden.shape[2:])))
            mask = torch.zeros(len(boxes), 1, 1, input_size[0] // stride, input_size[1] // stride, device=hidden.device)
            for index, (top, bottom, left, right) in enumerate(boxes):
                mask[index, ..., top // stride : bottom // stride, left // stride : right // stride] = 1
            grouped = self._grouped(norm, hidden)
            mask = mask.view(len(boxes), 1, 1, *grouped.shape[3:])
            dims = [0, *range(2, grouped.dim())]
            count = mask.sum() * grouped.shape[2]
            mean = (grouped * mask).sum(dim=dims) / count
            centred = grouped - mean.view(1, -1, *[1] * (grouped.dim() - 2))
            self.stats[norm] = (mean, (centred.square() * mask).sum(dim=dims) / count)
            return self._normalise(norm, grouped, hidden.shape)

        return self._patched(forward)

    def applying(self) -> contextlib.AbstractContextManager:
        """Run any windows with the recorded statistics."""

        def forward(norm: nn.GroupNorm, hidden: torch.Tensor) -> torch.Tensor:
            return self._normalise(norm, self._grouped(norm, hidden), hidden.shape)

        return self._patched(forward)

    @staticmethod
    def _grouped(norm: nn.GroupNorm, hidden: torch.Tensor) -> torch.Tensor:
        batch, channels = hidden.shape[:2]
        return hidden.float().view(batch, norm.num_groups, channels // norm.num_groups, *hidden.shape[2:])

    def _normalise(self, norm: nn.GroupNorm, grouped: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """GroupNorm with the shared statistics, in float32 (as autocast runs GroupNorm)."""
        mean, variance = (stat.view(1, -1, *[1] * (grouped.dim() - 2)) for stat in self.stats[norm])
        normalised = ((grouped - mean) * torch.rsqrt(variance + norm.eps)).view(shape)
        if norm.affine:
            affine = (1, -1, *[1] * (len(shape) - 2))
            normalised = normalised * norm.weight.float().view(affine) + norm.bias.float().view(affine)
        return normalised


def pooled_norms(network: nn.Module, source: torch.Tensor, windows: list[Window], stat_tiles: int) -> SharedGroupNorms:
    """Shared statistics for `network` on one map (1, C, H, W), from up to `stat_tiles` windows."""
    norms = SharedGroupNorms(network)
    count = max(1, min(stat_tiles, len(windows)))
    picked = [windows[round(index * (len(windows) - 1) / max(count - 1, 1))] for index in range(count)]
    batch = torch.cat([source[..., window.rows, window.cols] for window in picked])
    with norms.recording(picked, tuple(batch.shape[-2:])):
        network(batch)
    return norms


def encoder_halo(autoencoder: ImplicitAutoencoder) -> int:
    """Latent cells each encoding tile is widened by: the encoder's receptive radius in pixels, in cells."""
    return math.ceil(receptive_radius(autoencoder.encoder) / autoencoder.downsample_factor)


def decoder_margin(autoencoder: ImplicitAutoencoder) -> int:
    """Cells around a decoding core that its pixels read: the ensemble's neighbour, and one more when unfolding."""
    return 2 if autoencoder.head.feature_unfold else 1


def decoder_halo(autoencoder: ImplicitAutoencoder) -> int:
    """Latent cells each decoding tile is widened by: D_phi's receptive radius plus the head's margin."""
    return receptive_radius(autoencoder.feature_decoder) + decoder_margin(autoencoder)


def tiled_encode(autoencoder: ImplicitAutoencoder, images: torch.Tensor, tile: int, stat_tiles: int, halo: int | None = None) -> torch.Tensor:
    """`autoencoder.encode(images)` (posterior mean) computed in latent tiles of at most `tile` cells."""
    factor = autoencoder.downsample_factor
    halo = encoder_halo(autoencoder) if halo is None else halo
    size = (images.shape[-2] // factor, images.shape[-1] // factor)
    windows = tile_windows(size, tile, halo)
    if len(windows) == 1:
        return autoencoder.encode(images)
    pixel_windows = [window.scaled(factor) for window in windows]
    latents = []
    for image in images.split(1):
        norms = pooled_norms(autoencoder.encoder, image, pixel_windows, stat_tiles)
        latent = None
        with norms.applying():
            for window, pixels in zip(windows, pixel_windows):
                code = autoencoder.encode(image[..., pixels.rows, pixels.cols])
                if latent is None:
                    latent = code.new_empty((1, code.shape[1], *size))
                top, bottom, left, right = window.core_box()
                latent[..., window.core_rows, window.core_cols] = code[..., top:bottom, left:right]
        latents.append(latent)
    return torch.cat(latents)


def tiled_features(network: nn.Module, images: torch.Tensor, tile: int, halo: int | None = None) -> torch.Tensor:
    """`network(images)` in windows of at most `tile` x `tile` pixels plus a halo of its receptive radius, for a
    fully convolutional network that keeps the resolution and normalises nothing over the image (LIIF's EDSR and
    RDN encoders): each window's core is what the whole-image pass computes there, so the result is the same
    while the network's activations only ever cover one window."""
    halo = receptive_radius(network) if halo is None else halo
    windows = tile_windows(tuple(images.shape[-2:]), tile, halo)
    if len(windows) == 1:
        return network(images)
    features = None
    for window in windows:
        part = network(images[..., window.rows, window.cols])
        if features is None:
            features = part.new_empty((*part.shape[:2], *images.shape[-2:]))
        top, bottom, left, right = window.core_box()
        features[..., window.core_rows, window.core_cols] = part[..., top:bottom, left:right]
    return features


def first_pixel(cell: int, cells: int, pixels: int) -> int:
    """The first of `pixels` output pixels whose centre (2i + 1) / 2P lies at or past latent cell
    `cell` of `cells`: ceil((2 P c - n) / 2n), in integers so that no pixel is lost or doubled."""
    return max(-(-(2 * pixels * cell - cells) // (2 * cells)), 0)


def local_coordinates(span: slice, pixels: int, crop: slice, cells: int) -> torch.Tensor:
    """Global pixel-centre coordinates of `span`, expressed in the frame where the crop of latent
    cells `crop` covers [-1, 1]; the head then sees the same offsets and cells as on the whole map."""
    index = torch.arange(span.start, span.stop, dtype=torch.float64)
    return ((2 * index + 1) * cells / pixels - 2 * crop.start) / (crop.stop - crop.start) - 1


def render_core(
    autoencoder: ImplicitAutoencoder, features: torch.Tensor, window: Window, cells: tuple[int, int], size: tuple[int, int], margin: int, chunk_size: int, out: torch.Tensor
) -> None:
    """Render the output pixels whose centres lie in the window's core into their place in `out`
    (1, C, H, W), from the window's features (1, C, window) cropped to the core and `margin` cells."""
    crops = [slice(max(core.start - margin, 0), min(core.stop + margin, length)) for core, length in zip((window.core_rows, window.core_cols), cells)]
    features = features[..., crops[0].start - window.rows.start : crops[0].stop - window.rows.start, crops[1].start - window.cols.start : crops[1].stop - window.cols.start]
    spans = [
        slice(first_pixel(core.start, length, pixels), first_pixel(core.stop, length, pixels)) for core, length, pixels in zip((window.core_rows, window.core_cols), cells, size)
    ]
    ys, xs = (local_coordinates(span, pixels, crop, length).to(features.device, torch.float32) for span, pixels, crop, length in zip(spans, size, crops, cells))
    cell = torch.tensor([2.0 * length / (pixels * (crop.stop - crop.start)) for length, pixels, crop in zip(cells, size, crops)])
    autoencoder.head.render(features, ys, xs, cell.to(features.device), out[..., spans[0], spans[1]], chunk_size)


def tiled_decode(
    autoencoder: ImplicitAutoencoder, latent: torch.Tensor, size: tuple[int, int], tile: int, chunk_size: int, stat_tiles: int, halo: int | None = None
) -> torch.Tensor:
    """`autoencoder.decode(latent, size)` computed in latent tiles of at most `tile` cells."""
    margin = decoder_margin(autoencoder)
    halo = decoder_halo(autoencoder) if halo is None else halo
    cells = tuple(latent.shape[-2:])
    windows = tile_windows(cells, tile, halo)
    if len(windows) == 1:
        return autoencoder.decode(latent, size, chunk_size)
    output = torch.empty((latent.shape[0], autoencoder.config.image_channels, *size), device=latent.device, dtype=torch.float32)
    for index, code in enumerate(latent.split(1)):
        norms = pooled_norms(autoencoder.feature_decoder, code, windows, stat_tiles)
        with norms.applying():
            for window in windows:
                features = autoencoder.feature_decoder(code[..., window.rows, window.cols])
                render_core(autoencoder, features, window, cells, size, margin, chunk_size, output[index : index + 1])
    return output
