import pytest
import torch

from arbiscale.errors import UserError
from arbiscale.metrics import RESIZE_METHODS, diversity, lr_consistency, resize, self_ssim


@pytest.mark.parametrize("method", RESIZE_METHODS)
def test_lr_consistency_is_zero_for_an_output_that_explains_its_input(astronaut, method, to_model_range):
    sr = to_model_range(astronaut[:96, :64])
    lr = resize(sr, (24, 16), method)
    assert lr_consistency(sr, lr, method).item() == pytest.approx(0.0, abs=1e-12)


def test_lr_consistency_is_the_mse_on_the_unit_scale(astronaut, to_model_range):
    sr = to_model_range(astronaut[:96, :64]).repeat(2, 1, 1, 1)
    lr = resize(sr, (24, 16))
    shift = torch.tensor([0.2, -0.4], dtype=torch.float64).view(2, 1, 1, 1)
    # Resize weights sum to 1, so a constant offset of c in [-1, 1] is c / 2 on [0, 1]: MSE (c / 2)^2.
    assert lr_consistency(sr + shift, lr).tolist() == pytest.approx([0.01, 0.04], abs=1e-12)


def test_diversity_is_the_mean_pairwise_absolute_difference():
    base = torch.rand(2, 3, 8, 8) * 1.2 - 0.6
    assert diversity([base, base.clone()]).tolist() == [0.0, 0.0]
    # On [0, 1] the three samples differ by 0.1, 0.1 and 0.2: mean 0.4 / 3.
    samples = [base, base + 0.2, base - 0.2]
    assert diversity(samples).tolist() == pytest.approx([0.4 / 3] * 2, abs=1e-6)
    assert diversity(torch.stack(samples)).tolist() == pytest.approx([0.4 / 3] * 2, abs=1e-6)


def test_diversity_needs_two_samples_of_one_shape():
    with pytest.raises(UserError, match="at least 2"):
        diversity([torch.zeros(1, 3, 4, 4)])
    with pytest.raises(UserError, match="same shape"):
        diversity([torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5)])


def test_self_ssim_of_identical_renders_is_one(astronaut, to_model_range):
    render = to_model_range(astronaut[:64, :48])
    matrix = self_ssim([render, render.clone(), render.clone()])
    assert matrix.shape == (1, 3, 3)
    assert torch.allclose(matrix, torch.ones_like(matrix), atol=1e-12)


def test_self_ssim_across_sizes(astronaut, to_model_range):
    photo = to_model_range(astronaut[::3, ::3][:150, :140]).repeat(2, 1, 1, 1)
    sizes = [(64, 56), (96, 84), (128, 112)]
    renders = [resize(photo, size) for size in sizes]
    renders[1][1] = -renders[1][1]  # image 1 at the middle size is a different picture
    matrix = self_ssim(renders)
    assert matrix.shape == (2, 3, 3)
    assert torch.allclose(torch.diagonal(matrix, dim1=1, dim2=2), torch.ones(2, 3, dtype=torch.float64), atol=1e-12)
    consistent = matrix[0][~torch.eye(3, dtype=torch.bool)]
    assert consistent.min() > 0.6 and consistent.max() < 1
    assert (matrix[1, 1, [0, 2]] < 0.2).all() and (matrix[1, [0, 2], 1] < 0.2).all()
    assert matrix[1, 0, 2] == pytest.approx(matrix[0, 0, 2].item())


def test_self_ssim_ms_ssim_states_its_size_limit():
    renders = [torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 96, 96)]
    with pytest.raises(UserError, match="at least 176x176"):
        self_ssim(renders, measure="ms-ssim")
    with pytest.raises(UserError, match="ssim, ms-ssim"):
        self_ssim(renders, measure="psnr")
