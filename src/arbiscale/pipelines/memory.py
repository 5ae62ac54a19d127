"""A memory budget for upsampling, and the tile and query-chunk sizes that keep a run inside it.

The estimates count what a no-grad float32 pass keeps alive at its peak: the UNet's skip tensors
plus a few working maps at its widest level, the autoencoder's working maps at each resolution, the
implicit head's rows per query, and the whole-image tensors (the resized input, the latents, the
output). They are deliberately pessimistic (`SAFETY`), and BENCHMARKS.md checks them against the
measured peak of a 24-megapixel run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

from ..errors import UserError
from ..geometry import format_size
from ..models.autoencoder import ImplicitAutoencoder
from ..models.unet import LatentDenoiser
from .tiled_decode import decoder_halo, encoder_halo

FLOAT = 4
SAFETY = 1.5
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
# Encoder/decoder tiles are capped: their mid attention costs (window cells)^2 per tile, so past
# some size the halo saved no longer pays for it. With the `small` preset (one CPU thread) D_phi
# took 257, 220, 253 and 313 us per core cell at 32, 64, 96 and 128-cell tiles; the encoder 134,
# 132, 167 and 229.
MAX_CODE_TILE = 64
# The implicit head renders at most this many queries per step when the budget allows more.
MAX_DECODE_CHUNK = 65536
# Sampling tiles run through the UNet this many at a time at most (one batch), as the budget allows.
MAX_TILE_BATCH = 8


def readable(size: float) -> str:
    """Bytes as GiB, or MiB below one GiB."""
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def parse_memory(text: str | int) -> int:
    """Bytes from '4GB', '512M', '1.5GiB' or a plain number of bytes (K, M, G, T are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text), flags=re.IGNORECASE)
        if match is None:
            raise UserError(f"memory budget {text!r} is not a size: give e.g. 4GB, 512MB or 1.5G")
        value = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if value <= 0:
        raise UserError(f"memory budget must be positive, got {text!r}")
    return value


def available_memory(device: torch.device) -> int:
    """Free memory on the device: what an unbudgeted run may use before it should tile."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_free(need: int, device: torch.device, what: str, remedy: str) -> None:
    """A one-line UserError, before anything is allocated, when `need` bytes exceed the free memory."""
    free = available_memory(device)
    if need > free:
        raise UserError(f"{what} needs about {readable(need)} of memory and {readable(free)} is free: {remedy}")


def unet_bytes(denoiser: LatentDenoiser, cells: int, batch: int) -> int:
    """Peak bytes of one denoiser call on `batch` latents of `cells` cells each."""
    config = denoiser.unet.config
    widths = list(config.block_out_channels)
    skips = sum((config.layers_per_block + 1) * width / 4**level for level, width in enumerate(widths))
    working = max(8 * width / 4**level for level, width in enumerate(widths))
    return int(SAFETY * FLOAT * batch * cells * (skips + working + 4 * config.in_channels))


def encoder_bytes(autoencoder: ImplicitAutoencoder, pixels: int) -> int:
    """Peak bytes of encoding one image of `pixels` pixels."""
    widths = [autoencoder.config.base_channels * mult for mult in autoencoder.config.channel_mult]
    return int(SAFETY * FLOAT * pixels * (6 * widths[0] + sum(3 * width / 4**level for level, width in enumerate(widths))))


def feature_decoder_bytes(autoencoder: ImplicitAutoencoder, cells: int) -> int:
    """Peak bytes of D_phi on `cells` latent cells, with the head's per-cell projection."""
    config = autoencoder.config
    top = config.base_channels * config.channel_mult[-1]
    return int(SAFETY * FLOAT * cells * (6 * top + 2 * max(config.head_hidden)))


def query_bytes(autoencoder: ImplicitAutoencoder) -> int:
    """Bytes per query point the implicit head holds in flight (4 ensemble rows, a few layers)."""
    return int(SAFETY * FLOAT * (4 * 3 * max(autoencoder.config.head_hidden) + 32))


@dataclass(frozen=True)
class TilingOptions:
    """What a caller asked of tiling (`UpscalePipeline.enable_tiling`); None: chosen by the budget."""

    tile_size: int | None = None
    tile_overlap: int | None = None
    max_memory: int | None = None


@dataclass(frozen=True)
class TilePlan:
    """How one upsampling run is cut: None for a stage that runs on the whole image."""

    sample_tile: int | None
    sample_overlap: int
    tile_batch: int
    code_tile: int | None
    stat_tiles: int
    decode_chunk: int


def _largest_tile(fits, limit: int, multiple: int) -> int | None:
    """The largest multiple of `multiple` up to `limit` for which `fits(tile)` holds, or None."""
    tile = limit // multiple * multiple
    while tile >= multiple and not fits(tile):
        tile -= multiple
    return tile if tile >= multiple else None


def plan_tiles(
    autoencoder: ImplicitAutoencoder,
    denoiser: LatentDenoiser,
    batch: int,
    latent_size: tuple[int, int],
    out_size: tuple[int, int],
    budget: int,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    default_tile: int = 128,
    decode_chunk: int = MAX_DECODE_CHUNK,
) -> TilePlan:
    """Tile and chunk sizes that keep a run of `batch` outputs within `budget` bytes.

    A stage runs whole when it fits and no `tile_size` was asked for; otherwise it runs in the
    largest tiles that fit (sampling tiles up to `default_tile` cells, encoder/decoder tiles up to
    MAX_CODE_TILE). Stages run one after another, so each may use what the whole-image tensors leave.
    """
    height, width = latent_size
    cells = height * width
    factor = autoencoder.downsample_factor
    channels = autoencoder.config.latent_channels
    whole_images = FLOAT * (batch * 3 * out_size[0] * out_size[1] + 3 * 3 * cells * factor**2 + 12 * batch * channels * cells)
    free = budget - whole_images
    if free <= 0:
        raise UserError(
            f"a {format_size(out_size)} output needs more than {readable(whole_images)} for its whole-image "
            f"tensors alone, over the {readable(budget)} budget: raise `max_memory` or ask for a smaller output"
        )
    multiple = denoiser.size_multiple
    if tile_size is not None and (tile_size < multiple or tile_size % multiple):
        raise UserError(f"the tile size must be a positive multiple of {multiple} latent cells, got {tile_size}")

    def unet_fits(tile: int) -> bool:
        return unet_bytes(denoiser, min(tile, height) * min(tile, width), batch) <= free

    if tile_size is None and unet_fits(max(height, width)):
        sample_tile = None
    else:
        sample_tile = tile_size if tile_size is not None else _largest_tile(unet_fits, min(default_tile, max(height, width)), multiple)
        if sample_tile is None or not unet_fits(sample_tile):
            raise UserError(f"sampling needs more memory than the {readable(budget)} budget leaves: raise `max_memory` or lower `tile_size`")
        if sample_tile >= max(height, width):
            sample_tile = None
    # A quarter tile of overlap: with less, the error next to tile edges (where a tile's UNet saw
    # zero padding) grows past the error inside tiles (tests/pipelines/test_tiled_decode.py).
    overlap = max(1, (sample_tile or default_tile) // 4) if tile_overlap is None else tile_overlap
    tile_batch = 1
    if sample_tile is not None:
        tile_batch = max(1, min(MAX_TILE_BATCH, free // unet_bytes(denoiser, min(sample_tile, height) * min(sample_tile, width), batch)))
    if sample_tile is not None and not 0 <= overlap < sample_tile:
        raise UserError(f"the tile overlap must be at least 0 and smaller than the tile ({sample_tile}), got {overlap}")

    decode_halo, encode_halo = decoder_halo(autoencoder), encoder_halo(autoencoder)

    def window_cells(tile: int, halo: int) -> int:
        return min(tile + 2 * halo, height) * min(tile + 2 * halo, width)

    def code_fits(tile: int, chunk: int = 1024) -> bool:
        return (
            encoder_bytes(autoencoder, window_cells(tile, encode_halo) * factor**2) <= free
            and feature_decoder_bytes(autoencoder, window_cells(tile, decode_halo)) + chunk * query_bytes(autoencoder) <= free
        )

    code_tile = tile_size
    if code_tile is None and not code_fits(max(height, width)):
        code_tile = _largest_tile(code_fits, min(MAX_CODE_TILE, max(height, width)), 1)
        if code_tile is None:
            raise UserError(f"decoding needs more memory than the {readable(budget)} budget leaves: raise `max_memory`")
    elif code_tile is not None and not code_fits(code_tile):
        raise UserError(f"decoding a tile of {code_tile} cells needs more than the {readable(budget)} budget: lower `tile_size` or raise `max_memory`")
    if code_tile is not None and code_tile >= max(height, width):
        code_tile = None
    window = window_cells(code_tile or max(height, width), decode_halo)
    chunk_room = (free - feature_decoder_bytes(autoencoder, window)) // query_bytes(autoencoder)
    if chunk_room < 1:
        raise UserError(f"decoding needs more memory than the {readable(budget)} budget leaves: raise `max_memory` or lower `tile_size`")
    # The statistics pass of tiled encoding/decoding holds its sample of windows all at once.
    window_bytes = max(encoder_bytes(autoencoder, window_cells(code_tile or max(height, width), encode_halo) * factor**2), feature_decoder_bytes(autoencoder, window))
    stat_tiles = max(1, free // window_bytes)
    return TilePlan(sample_tile, overlap, int(tile_batch), code_tile, int(stat_tiles), int(min(decode_chunk, chunk_room)))
