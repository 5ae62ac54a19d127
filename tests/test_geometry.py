import math

import pytest
import torch

from arbiscale.geometry import cell_size, coord_grid, format_size, parse_size, pixel_centres, scaled_size


def test_coord_grid_is_rows_first_pixel_centres_for_non_square_sizes():
    coord = coord_grid((2, 4))
    assert coord.shape == (8, 2)
    assert torch.allclose(coord[0], torch.tensor([-0.5, -0.75]))
    assert torch.allclose(coord[1], torch.tensor([-0.5, -0.25]))
    assert torch.allclose(coord[4], torch.tensor([0.5, -0.75]))
    assert torch.allclose(coord[-1], torch.tensor([0.5, 0.75]))


def test_pixel_centres_are_symmetric_and_one_cell_apart():
    centres = pixel_centres(7)
    assert torch.allclose(centres, -centres.flip(0), atol=1e-6)
    assert torch.allclose(centres.diff(), torch.full((6,), 2 / 7))


def test_cell_size_is_dy_dx():
    assert torch.allclose(cell_size((10, 40)), torch.tensor([0.2, 0.05]))


@pytest.mark.parametrize(("size", "scale", "expected"), [((10, 16), 2.5, (25, 40)), ((7, 5), 3.7, (26, 18)), ((13, 9), (2.0, 1.5), (26, 14)), ((1, 1), 0.1, (1, 1))])
def test_scaled_size_rounds_each_axis(size, scale, expected):
    assert scaled_size(size, scale) == expected


@pytest.mark.parametrize("scale", [0, -2, math.nan, math.inf])
def test_scaled_size_rejects_bad_scales(scale):
    with pytest.raises(ValueError, match="scale"):
        scaled_size((8, 8), scale)


def test_parse_size_reads_width_x_height_and_returns_height_width():
    assert parse_size("384x256") == (256, 384)
    assert format_size(parse_size("1920x1080")) == "1920x1080"
    with pytest.raises(ValueError, match="WIDTHxHEIGHT, e.g. 64x64"):
        parse_size("64")
    for bad in ["0x10", "abc", "10x", "1x2x3", "-4x4"]:
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)
