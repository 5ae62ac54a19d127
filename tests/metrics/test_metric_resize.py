"""Bicubic resizing: kernel values, MATLAB imresize values computed by hand, PIL as an independent check."""

import numpy as np
import pytest
import torch
from PIL import Image

from arbiscale.errors import UserError
from arbiscale.metrics import RESIZE_METHODS, imresize, resize, synthesize_lr, to_unit
from arbiscale.metrics.resize import cubic, matlab_weight_matrix

# Keys' kernel, a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1], -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2].
KERNEL_VALUES = [(0.0, 1.0), (0.25, 0.8671875), (0.5, 0.5625), (0.75, 0.2265625), (1.0, 0.0), (1.25, -0.0703125), (1.5, -0.0625), (1.75, -0.0234375), (2.0, 0.0), (2.5, 0.0)]


@pytest.mark.parametrize(("x", "expected"), KERNEL_VALUES)
def test_cubic_kernel_values(x, expected):
    assert cubic(torch.tensor([x, -x], dtype=torch.float64)).tolist() == [pytest.approx(expected, abs=1e-15)] * 2


def row(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_matlab_downscale_of_a_ramp_matches_hand_computation():
    """imresize([1 2 3 4], [1 2]) (or by 0.5): scale 0.5, so the kernel is 0.5 * cubic(0.5 d) over width 8.

    Output 1 samples u = 1/0.5 + 0.5 (1 - 1/0.5) = 1.5 (1-based). Taps at distances +-0.5, +-1.5, +-2.5,
    +-3.5 weigh 0.43359375, 0.11328125, -0.03515625, -0.01171875 (sum 1). Taps left of the image mirror
    (indices 0, -1, -2 read pixels 1, 2, 3; index 5 reads 4), so
    1.4609375 = .43359375 (1 + 2) + .11328125 (1 + 3) - .03515625 (2 + 4) - .01171875 (3 + 4);
    the second output is 5 - 1.4609375 by the ramp's symmetry.
    """
    expected = [1.4609375, 3.5390625]
    assert imresize(row([1, 2, 3, 4]), size=(1, 2)).flatten().tolist() == pytest.approx(expected, abs=1e-12)
    assert imresize(row([1, 2, 3, 4]), scale=0.5).flatten().tolist() == pytest.approx(expected, abs=1e-12)


def test_matlab_upscale_of_a_ramp_matches_hand_computation():
    """imresize([1 2 3 4], 2): plain cubic; output x samples u = x/2 + 1/4.

    x = 1: u = 0.75, taps at indices -1, 0, 1, 2 (distances 1.75, 0.75, -0.25, -1.25, weights -0.0234375,
    0.2265625, 0.8671875, -0.0703125); mirrored, indices -1 and 0 read pixels 2 and 1:
    -0.0234375 * 2 + 0.2265625 + 0.8671875 - 0.0703125 * 2 = 0.90625. x = 2 (u = 1.25) gives 1.1796875,
    x = 3 (u = 1.75) gives 1.7265625; from x = 4 on the taps lie inside the image and the kernel
    reproduces the ramp exactly (u = 2.25, 2.75); the rest follows by symmetry.
    """
    expected = [0.90625, 1.1796875, 1.7265625, 2.25, 2.75, 3.2734375, 3.8203125, 4.09375]
    result = imresize(row([1, 2, 3, 4]), scale=2)
    assert result.shape == (1, 1, 2, 8)
    assert result[0, 0, 0].tolist() == pytest.approx(expected, abs=1e-12)
    assert torch.equal(result[0, 0, 0], result[0, 0, 1])


def test_weight_rows_sum_to_one_and_reproduce_a_ramp_inside():
    matrix = matlab_weight_matrix(30, 71, 71 / 30)
    assert torch.allclose(matrix.sum(dim=1), torch.ones(71, dtype=torch.float64))
    ramp = torch.arange(30, dtype=torch.float64)
    positions = (torch.arange(71, dtype=torch.float64) + 0.5) * 30 / 71 - 0.5
    inside = slice(6, -6)
    assert torch.allclose((matrix @ ramp)[inside], positions[inside], atol=1e-12)


def test_output_size_from_scale_is_ceil_as_matlab():
    assert imresize(torch.zeros(1, 1, 5, 7), scale=0.5).shape[-2:] == (3, 4)
    assert imresize(torch.zeros(1, 1, 99, 30), scale=1 / 3).shape[-2:] == (33, 10)
    assert imresize(torch.zeros(1, 1, 5, 7), scale=(2, 0.5)).shape[-2:] == (10, 4)


@pytest.mark.parametrize("size", [(13, 21), (97, 130), (40, 17)])
def test_matlab_and_pil_agree_away_from_borders(astronaut, size, to_model_range):
    """Both are Keys a = -0.5 with the same sample positions and antialiasing; only borders differ."""
    images = to_model_range(astronaut[100:140, 200:256])
    matlab, pil = resize(images, size, "matlab"), resize(images, size, "pil")
    assert matlab.shape == pil.shape == (1, 3, *size)
    margin_h = 3 * max(1, round(40 / size[0])) + 2
    margin_w = 3 * max(1, round(56 / size[1])) + 2
    inner = (..., slice(margin_h, -margin_h), slice(margin_w, -margin_w))
    assert torch.allclose(matlab[inner], pil[inner], atol=1e-5)


@pytest.mark.parametrize("size", [(13, 21), (97, 130), (40, 17), (7, 200)])
def test_pil_method_matches_pillow_float_resampling_everywhere(size):
    plane = np.random.default_rng(5).random((40, 56), dtype=np.float32)
    expected = np.asarray(Image.fromarray(plane).resize(size[::-1], Image.Resampling.BICUBIC))
    result = resize(torch.from_numpy(plane).view(1, 1, 40, 56), size, "pil")[0, 0].numpy()
    assert np.abs(result - expected).max() < 1e-5


def test_pil_method_matches_pillow_on_8bit_images(astronaut, to_model_range):
    crop = astronaut[:60, :90]
    expected = np.asarray(Image.fromarray(crop).resize((37, 23), Image.Resampling.BICUBIC)).astype(np.float64)
    result = to_unit(resize(to_model_range(crop), (23, 37), "pil"))[0].permute(1, 2, 0).numpy() * 255
    # Pillow rounds to 8 bits between its horizontal and vertical passes; we do not.
    assert np.abs(result.clip(0, 255) - expected).max() <= 1.0


@pytest.mark.parametrize("method", RESIZE_METHODS)
def test_constants_survive_and_dtype_device_are_kept(method):
    images = torch.full((2, 3, 17, 23), 0.25, dtype=torch.float32)
    out = resize(images, (7, 40), method)
    assert out.dtype == torch.float32 and out.device == images.device
    assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-6)


def test_same_size_is_identity_for_matlab():
    images = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    assert torch.allclose(resize(images, (9, 11), "matlab"), images, atol=1e-15)


def test_synthesized_lr_lies_on_the_8bit_grid(astronaut, to_model_range):
    lr = synthesize_lr(to_model_range(astronaut[:64, :48]), (16, 12))
    levels = to_unit(lr) * 255
    assert lr.shape == (1, 3, 16, 12)
    assert torch.allclose(levels, levels.round(), atol=1e-9)


def test_bad_requests_are_user_errors():
    images = torch.zeros(1, 3, 8, 8)
    with pytest.raises(UserError, match="matlab, pil"):
        resize(images, (4, 4), "lanczos")
    with pytest.raises(UserError, match="positive whole"):
        resize(images, (0, 4))
    with pytest.raises(UserError, match="exactly one"):
        imresize(images, scale=2, size=(4, 4))
    with pytest.raises(UserError, match="float images"):
        resize(images.to(torch.uint8), (4, 4))
