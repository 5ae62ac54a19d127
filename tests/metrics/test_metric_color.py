import pytest
import torch

from arbiscale.metrics import from_unit, quantize_8bit, rgb_to_y, to_unit

# Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1] (basicsr / MATLAB rgb2ycbcr), by hand:
HAND_Y = [
    ((0.0, 0.0, 0.0), 16.0),
    ((1.0, 1.0, 1.0), 235.0),  # 16 + 219
    ((1.0, 0.0, 0.0), 81.481),
    ((0.0, 1.0, 0.0), 144.553),
    ((0.0, 0.0, 1.0), 40.966),
    ((0.5, 0.5, 0.5), 125.5),  # 16 + 219 / 2
    ((0.2, 0.4, 0.6), 16 + 13.0962 + 51.4212 + 14.9796),
]


@pytest.mark.parametrize(("rgb", "expected"), HAND_Y)
def test_luma_matches_hand_values(rgb, expected):
    pixel = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1)
    assert rgb_to_y(pixel).item() == pytest.approx(expected, abs=1e-9)


def test_unit_conversion_round_trips():
    images = torch.rand(2, 3, 4, 5) * 2 - 1
    assert torch.allclose(from_unit(to_unit(images)), images)
    assert to_unit(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.5, 1.0]


def test_quantize_8bit_clamps_and_lands_on_256_levels():
    images = torch.rand(1, 3, 8, 8, dtype=torch.float64) * 3 - 1.5
    levels = to_unit(quantize_8bit(images)) * 255
    assert torch.allclose(levels, levels.round(), atol=1e-9)
    assert levels.min() >= 0 and levels.max() <= 255
    assert (levels == 0).any() and (levels == 255).any()
