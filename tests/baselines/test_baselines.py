import numpy as np
import pytest
import torch
from skimage import data

from arbiscale.baselines.bicubic import bicubic_upscale
from arbiscale.baselines.idm import IDMStyleSR
from arbiscale.data.images import resize
from arbiscale.errors import UserError
from arbiscale.geometry import cell_size, coord_grid, scaled_size
from arbiscale.models import load_component
from arbiscale.models.liif import LIIF


def tiny_liif() -> LIIF:
    return LIIF(channels=16, num_blocks=2, head_hidden=(64, 64))


def low_res(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("scale", [(2.37, 3.1), (1.5, 4.25)])
def test_bicubic_and_liif_render_non_square_non_integer_scales(scale):
    lr = low_res((10, 13))
    size = scaled_size((10, 13), scale)
    torch.manual_seed(0)
    liif = tiny_liif().eval()
    for upscaled in (bicubic_upscale(lr, size), liif.upscale(lr, size, chunk_size=97)):
        assert upscaled.shape == (2, 3, *size)
        assert torch.isfinite(upscaled).all() and upscaled.abs().max() <= 1


def test_liif_chunked_upscale_equals_one_pass_and_refuses_bad_sizes():
    torch.manual_seed(0)
    liif = tiny_liif().eval()
    lr = low_res((7, 9), batch=1)
    assert torch.allclose(liif.upscale(lr, (19, 30), chunk_size=50), liif.upscale(lr, (19, 30), chunk_size=None), atol=1e-6)
    with pytest.raises(UserError):
        liif.upscale(lr, (0, 30))
    with pytest.raises(UserError):
        bicubic_upscale(lr, (12, -1))


def test_liif_round_trips_through_strict_loading(tmp_path):
    torch.manual_seed(0)
    liif = tiny_liif().eval()
    liif.save_pretrained(tmp_path)
    loaded = load_component(LIIF, tmp_path).eval()
    lr = low_res((6, 5), batch=1)
    assert torch.equal(liif.upscale(lr, (11, 13)), loaded.upscale(lr, (11, 13)))


def test_liif_overfits_one_real_photo_crop():
    """A few seconds of Adam on one astronaut crop must cut the 3x reconstruction error by well over half."""
    torch.manual_seed(0)
    hr = torch.from_numpy(np.ascontiguousarray(data.astronaut()[40:88, 200:248])).permute(2, 0, 1).float() / 127.5 - 1
    hr = hr.unsqueeze(0)
    lr = resize(hr, (16, 16))
    coord = coord_grid((48, 48)).unsqueeze(0)
    cell = cell_size((48, 48))
    target = hr.flatten(2).transpose(1, 2)
    liif = tiny_liif()
    optimizer = torch.optim.Adam(liif.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        return (liif(lr, coord, cell) - target).abs().mean()

    with torch.no_grad():
        initial = loss().item()
    for _ in range(80):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss().item()
        bicubic = (bicubic_upscale(lr, (48, 48)) - hr).abs().mean().item()
    assert final < 0.3 * initial, (initial, final)
    assert final < 1.5 * bicubic, (final, bicubic)


def test_idm_style_denoising_step_shapes_at_two_output_sizes():
    torch.manual_seed(0)
    model = IDMStyleSR.from_preset("tiny").eval()
    lr = low_res((6, 7))
    with torch.no_grad():
        for size in [(15, 22), (24, 17)]:  # odd sides: the implicit upsamplers render each level's exact size
            noisy = torch.randn(2, 3, *size)
            eps = model(noisy, torch.tensor([10, 900]), lr)
            assert eps.shape == noisy.shape
            assert torch.isfinite(eps).all()


def test_idm_style_upscale_is_seeded_and_sized():
    torch.manual_seed(0)
    model = IDMStyleSR.from_preset("tiny").eval()
    lr = low_res((5, 6), batch=1)
    first = model.upscale(lr, (13, 20), num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    again = model.upscale(lr, (13, 20), num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    assert first.shape == (1, 3, 13, 20)
    assert torch.equal(first, again)
    with pytest.raises(UserError):
        model(torch.randn(2, 3, 8, 8), 5, lr)
