"""PSNR/SSIM/MS-SSIM against scikit-image and an independent numpy/scipy MS-SSIM."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from arbiscale.errors import UserError
from arbiscale.metrics import ms_ssim, psnr, ssim


def numpy_luma(array: np.ndarray) -> np.ndarray:
    unit = array.astype(np.float64) / 255
    return 16 + 65.481 * unit[..., 0] + 128.553 * unit[..., 1] + 24.966 * unit[..., 2]


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if a.ndim == 3:
        kwargs["channel_axis"] = -1
    return structural_similarity(a.astype(np.float64), b.astype(np.float64), **kwargs)


def crop(array: np.ndarray, border: int) -> np.ndarray:
    return array[border:-border, border:-border] if border else array


@pytest.mark.parametrize("border", [0, 4])
@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_psnr_and_ssim_match_scikit_image(photo_pair, channel, border, to_model_range):
    clean, noisy = photo_pair
    reference_a, reference_b = (clean, noisy) if channel == "rgb" else (numpy_luma(clean), numpy_luma(noisy))
    expected_psnr = peak_signal_noise_ratio(crop(reference_a, border).astype(np.float64), crop(reference_b, border).astype(np.float64), data_range=255)
    expected_ssim = skimage_ssim(crop(reference_a, border), crop(reference_b, border))
    a, b = to_model_range(clean), to_model_range(noisy)
    assert psnr(b, a, channel=channel, crop_border=border).item() == pytest.approx(expected_psnr, abs=1e-9)
    assert ssim(b, a, channel=channel, crop_border=border).item() == pytest.approx(expected_ssim, abs=1e-9)


def test_batch_gives_one_value_per_image(photo_pair, to_model_range):
    clean, noisy = photo_pair
    batch = torch.cat([to_model_range(noisy), to_model_range(clean)])
    reference = to_model_range(clean).expand(2, -1, -1, -1)
    values = psnr(batch, reference)
    assert values.shape == (2,)
    assert values[0].item() == pytest.approx(psnr(batch[:1], reference[:1]).item())
    assert values[1].item() == float("inf")  # identical images, as basicsr
    assert ssim(batch, reference)[1].item() == pytest.approx(1.0, abs=1e-12)


def test_inputs_are_clamped_to_the_valid_range(photo_pair, to_model_range):
    clean, noisy = (to_model_range(a) for a in photo_pair)
    overshoot = noisy * 1.5
    assert psnr(overshoot, clean).item() == psnr(overshoot.clamp(-1, 1), clean).item()
    assert ssim(overshoot, clean).item() == ssim(overshoot.clamp(-1, 1), clean).item()


def test_bad_inputs_are_user_errors():
    images = torch.zeros(1, 3, 20, 20)
    with pytest.raises(UserError, match="differs from reference"):
        psnr(images, torch.zeros(1, 3, 20, 21))
    with pytest.raises(UserError, match="removes the whole"):
        psnr(images, images, crop_border=10)
    with pytest.raises(UserError, match="at least 11x11"):
        ssim(images, images, crop_border=5)
    with pytest.raises(UserError, match="'rgb' or 'y'"):
        psnr(images, images, channel="lab")


def numpy_ms_ssim(a: np.ndarray, b: np.ndarray, weights: list[float]) -> float:
    """Independent MS-SSIM of single-channel float arrays on [0, 255]: scipy Gaussian filtering (radius 5),
    border cropped, 2x2 block means between scales."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    value = 1.0
    for level, weight in enumerate(weights):

        def blur(t):
            return gaussian_filter(t, 1.5, truncate=3.5)[5:-5, 5:-5]

        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        term = cs.mean() if level < len(weights) - 1 else ((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs).mean()
        value *= max(term, 0.0) ** weight
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return value


def test_ms_ssim_matches_independent_computation(astronaut, to_model_range):
    clean = astronaut[:181, 7:197]
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255)
    expected = numpy_ms_ssim(numpy_luma(clean), numpy_luma(noisy), [0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    result = ms_ssim(to_model_range(noisy), to_model_range(clean), channel="y").item()
    assert result == pytest.approx(expected, abs=1e-9)
    assert 0 < result < 1


def test_ms_ssim_with_one_scale_is_ssim_and_identity_is_one(photo_pair, to_model_range):
    clean, noisy = (to_model_range(a) for a in photo_pair)
    assert ms_ssim(noisy, clean, scales=1).item() == pytest.approx(ssim(noisy, clean).item(), abs=1e-12)
    assert ms_ssim(clean, clean, scales=3).item() == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_states_its_minimum_size():
    images = torch.zeros(1, 3, 175, 300)
    with pytest.raises(UserError, match="at least 176x176.*fewer scales"):
        ms_ssim(images, images)
    assert ms_ssim(images[..., :44, :44], images[..., :44, :44], scales=3).item() == pytest.approx(1.0)
