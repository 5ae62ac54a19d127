import math

import pytest
import torch

from arbiscale.errors import UserError
from arbiscale.models import ImplicitAutoencoder
from arbiscale.pipelines.memory import parse_memory, plan_tiles
from arbiscale.pipelines.tiled_decode import tile_windows, tiled_decode, tiled_encode
from arbiscale.presets import get_preset
from arbiscale.sampling.tiling import tile_layout


def autoencoder(**changes):
    torch.manual_seed(0)
    return ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, **changes}).eval()


def psnr(first, second):
    """PSNR of images in [-1, 1] (data range 2)."""
    return 10 * math.log10(4 / (first - second).square().mean().item())


@pytest.mark.parametrize("changes", [dict(mid_attention=False), dict(mid_attention=False, feature_unfold=True)])
@pytest.mark.parametrize("size", [(133, 170), (61, 75)])
def test_tiled_decoding_without_attention_is_exact(changes, size):
    model = autoencoder(**changes)
    latent = torch.randn(2, 3, 44, 58)
    with torch.no_grad():
        whole = model.decode(latent, size)
        tiled = tiled_decode(model, latent, size, tile=12, chunk_size=777, stat_tiles=100)
    assert len(tile_windows((44, 58), 12, 15)) > 4
    assert (tiled - whole).abs().max() < 1e-5


def test_tiled_encoding_without_attention_is_exact():
    model = autoencoder(mid_attention=False)
    images = torch.rand(1, 3, 96, 120) * 2 - 1
    with torch.no_grad():
        assert (tiled_encode(model, images, tile=12, stat_tiles=100) - model.encode(images)).abs().max() < 1e-5


def test_with_mid_attention_tiles_see_only_their_window():
    """Attention is the one part left approximate. Measured with random weights, 16-cell tiles on a
    48 x 64 latent (tiny): largest decoded difference 1.6e-3 (mean 1.7e-4), encoded latents 0.7%
    relative RMS. The `small` preset (32-cell tiles, 96 x 128): 2.5e-4 (mean 2e-5) and 1.0%."""
    model = autoencoder()
    latent, images = torch.randn(1, 3, 48, 64), torch.rand(1, 3, 96, 128) * 2 - 1
    with torch.no_grad():
        whole = model.decode(latent, (150, 200))
        tiled = tiled_decode(model, latent, (150, 200), tile=16, chunk_size=4096, stat_tiles=100)
        encoded, tiled_encoded = model.encode(images), tiled_encode(model, images, tile=16, stat_tiles=100)
    assert 0 < (tiled - whole).abs().max() < 5e-3
    assert (tiled_encoded - encoded).norm() / encoded.norm() < 0.03


def band_masks(size, cuts, width):
    """(border, interior) masks of an (H, W) map for cut lines at `cuts` = (rows, cols)."""
    border = torch.zeros(size, dtype=torch.bool)
    for row in cuts[0]:
        border[max(row - width, 0) : row + width, :] = True
    for col in cuts[1]:
        border[:, max(col - width, 0) : col + width] = True
    return border, ~border


def decode_cuts(latent_size, out_size, tile, halo):
    """Output pixel rows and columns where one decoding tile's core ends and the next begins."""
    windows = tile_windows(latent_size, tile, halo)
    return [
        sorted({round(getattr(window, name).start * pixels / cells) for window in windows} - {0})
        for name, cells, pixels in (("core_rows", latent_size[0], out_size[0]), ("core_cols", latent_size[1], out_size[1]))
    ]


def test_estimated_statistics_leave_no_seam():
    """With statistics from 2 of 20 tiles the render is off by a global, smooth amount, but no more
    at tile borders than inside tiles: every tile is normalised alike."""
    model = autoencoder(mid_attention=False)
    latent = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        error = (tiled_decode(model, latent, (120, 150), 10, 4096, stat_tiles=2) - model.decode(latent, (120, 150))).abs().mean(1)[0]
    border, interior = band_masks((120, 150), decode_cuts((40, 50), (120, 150), 10, 15), 3)
    assert error.mean() > 1e-4
    assert error[border].mean() <= 1.1 * error[interior].mean()


@pytest.fixture(scope="module")
def photo(real_photos):
    """A 24 x 32 real photo crop (astronaut), in [-1, 1]."""
    crop = torch.from_numpy(real_photos["astronaut"][100:148:2, 150:214:2]).permute(2, 0, 1).float()
    return crop[None] / 127.5 - 1


def upscale_tiled(upscaler, photo, tiling: dict, **options):
    """The pipeline's result with `enable_tiling(**tiling)`, leaving the shared pipeline untiled after."""
    upscaler.enable_tiling(**tiling)
    try:
        return upscaler(photo, **options)
    finally:
        upscaler.disable_tiling()


@pytest.fixture(scope="module")
def whole_and_tiled(upscaler, photo):
    """(whole, tiled) results per deterministic sampler, computed once for the tests below."""
    results = {}

    def run(sampler, eta):
        if sampler not in results:
            options = dict(scale=4, num_inference_steps=5, sampler=sampler, eta=eta)
            results[sampler] = tuple(
                upscale_tiled(upscaler, photo, tiling, generator=torch.Generator().manual_seed(0), **options)
                for tiling in (dict(max_memory="4GB"), dict(tile_size=16, tile_overlap=8))
            )
        return results[sampler]

    return run


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "eta"), [("ddim", 0.0), ("dpm-solver++", None)])
def test_tiled_upscaling_agrees_with_whole_upscaling(upscaler, photo, whole_and_tiled, sampler, eta):
    """Deterministic samplers, 4x of a 24 x 32 photo crop (48 x 64 latent), 16-cell tiles overlapping
    by 8, 5 steps, random tiny weights. Measured: PSNR 68.5 dB (ddim eta 0 and dpm-solver++, the
    same at 10 steps) between the tiled and the whole image; the sterner figure is the sampled latents'
    difference, 5.0% relative RMS (the RMS image difference is 0.2% of the image's std)."""
    whole, tiled = whole_and_tiled(sampler, eta)
    assert whole.tiling.sample_tile is None and whole.tiling.code_tile is None
    assert tiled.tiling.sample_tile == 16 and tiled.tiling.code_tile == 16
    assert whole.latents.shape[-2:] == tiled.latents.shape[-2:] == (48, 64)
    assert psnr(tiled.images, whole.images) > 58
    assert (tiled.latents - whole.latents).norm() / whole.latents.norm() < 0.08
    assert (tiled.images - whole.images).square().mean().sqrt() < 0.02 * whole.images.std()
    again = upscale_tiled(upscaler, photo, dict(tile_size=16, tile_overlap=8), scale=4, num_inference_steps=5, sampler=sampler, eta=eta, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.images, tiled.images)
    assert torch.equal(
        upscaler(photo, scale=4, num_inference_steps=5, sampler=sampler, eta=eta, generator=torch.Generator().manual_seed(0)).images, whole.images
    )  # tiling is off again after disable_tiling


@pytest.mark.slow
def test_no_jump_in_the_error_along_tile_borders(whole_and_tiled):
    """The tiled-vs-whole error next to sampling-tile edges and decoding-tile cores is about what it is
    inside tiles. Measured: mean error in 2-pixel bands at the borders 1.08x the interior mean (1.22x
    with a 4-cell overlap, hence the quarter-tile default); the largest error jump across a border
    column 0.85-1.15x the largest across a column inside a tile, depending on the random weights (a
    seam would be many times larger)."""
    whole, tiled = whole_and_tiled("ddim", 0.0)
    signed = (tiled.images - whole.images).mean(1)[0]
    out_size, factor = tuple(signed.shape), 2
    sample_cuts = [
        sorted({edge * factor for span in spans for edge in (span.start, span.stop)} - {0, length * factor}) for spans, length in zip(zip(*tile_layout((48, 64), 16, 8)), (48, 64))
    ]
    cuts = [sorted(set(a) | set(b)) for a, b in zip(sample_cuts, decode_cuts((48, 64), out_size, 16, 15))]
    border, interior = band_masks(out_size, cuts, 2)
    assert signed.abs()[border].mean() <= 1.2 * signed.abs()[interior].mean()
    jumps = (signed[:, 1:] - signed[:, :-1]).abs().mean(0)
    at_cuts = torch.tensor([col - 1 for col in cuts[1]])
    inside = torch.ones(len(jumps), dtype=torch.bool)
    inside[at_cuts] = False
    assert jumps[at_cuts].max() <= 1.5 * jumps[inside].max()


@pytest.mark.slow
def test_tiled_bfloat16_autocast_on_cpu_stays_close(upscaler, photo):
    """The shared GroupNorm runs in float32 under autocast, like torch's own (measured: 3.5e-4 mean).
    A 12 x 16 corner (2 x 2 tiles of the 24 x 32 latent): bf16 is emulated, 10x slower, on AVX2 CPUs."""
    options = dict(scale=4, num_inference_steps=2, sampler="ddim", eta=0.0)
    tiling = dict(tile_size=16, tile_overlap=4)
    photo = photo[..., :12, :16]
    full = upscale_tiled(upscaler, photo, tiling, generator=torch.Generator().manual_seed(0), **options).images
    half = upscale_tiled(upscaler, photo, tiling, generator=torch.Generator().manual_seed(0), autocast_dtype=torch.bfloat16, **options)
    assert half.tiling.sample_tile == 16
    assert half.images.dtype == torch.float32 and (half.images - full).abs().mean() < 0.002


def test_a_small_budget_tiles_automatically(upscaler, photo):
    out = upscale_tiled(upscaler, photo, dict(max_memory="12MB"), scale=4, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.tiling.code_tile is not None
    assert out.images.shape == (1, 3, 96, 128) and torch.isfinite(out.images).all()


def test_memory_budgets_parse_and_bound_the_plan(upscaler):
    assert parse_memory("4GB") == 4 * 2**30 and parse_memory("512m") == 512 * 2**20 and parse_memory("1.5GiB") == 3 * 2**29
    assert parse_memory(1000) == 1000
    for bad in ("lots", "-1GB", "0"):
        with pytest.raises(UserError, match="memory budget"):
            parse_memory(bad)
    parts = (upscaler.autoencoder, upscaler.denoiser, 1, (1500, 2000), (6000, 8000))
    roomy = plan_tiles(*parts, budget=parse_memory("64GB"))
    tight = plan_tiles(*parts, budget=parse_memory("4GB"))
    assert tight.sample_tile == 128 and tight.code_tile is not None and 1 <= tight.tile_batch <= 8
    assert tight.decode_chunk <= roomy.decode_chunk
    with pytest.raises(UserError, match="`max_memory`"):
        plan_tiles(*parts, budget=parse_memory("500MB"))
    with pytest.raises(UserError, match="multiple of 2"):
        plan_tiles(*parts, budget=parse_memory("4GB"), tile_size=15)
    with pytest.raises(UserError, match="overlap"):
        plan_tiles(*parts, budget=parse_memory("4GB"), tile_size=16, tile_overlap=16)
