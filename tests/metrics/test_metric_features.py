"""FID/KID/precision-recall against independent formulas; the extractor loader with tiny TorchScript files."""

import numpy as np
import pytest
import scipy.linalg
import torch

from arbiscale.errors import UserError
from arbiscale.metrics import FeatureExtractor, Unavailable, frechet_distance, kernel_inception_distance, load_feature_extractor, precision_recall

# NVIDIA's Inception is TorchScript; torch 2.13 flags torch.jit as deprecated but still loads it.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's formula with scipy.linalg.sqrtm."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fid_matches_the_sqrtm_formula(features):
    rng = np.random.default_rng(1)
    other = features * 1.3 + rng.normal(size=features.shape) + 0.5
    assert frechet_distance(features, other) == pytest.approx(scipy_fid(features, other), rel=1e-8)
    assert frechet_distance(torch.from_numpy(features), torch.from_numpy(other).float()) == pytest.approx(scipy_fid(features, other), rel=1e-5)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(features):
    scale = np.trace(np.cov(features, rowvar=False))
    assert frechet_distance(features, features) < 1e-9 * scale
    rng = np.random.default_rng(2)
    noise = rng.normal(size=features.shape)
    values = [frechet_distance(features, features + level * noise) for level in (0.1, 0.3, 1.0, 3.0)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_fid_of_a_shifted_set_is_the_squared_shift(features):
    shift = np.linspace(-1, 1, features.shape[1])
    assert frechet_distance(features, features + shift) == pytest.approx((shift**2).sum(), rel=1e-7)


def test_kid_equals_the_unbiased_mmd_written_out():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)) + 0.3

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m = len(x)
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=50)
    assert mean == pytest.approx(within - 2 * cross, abs=1e-12)  # a full-size subset is a permutation
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_noise():
    rng = np.random.default_rng(4)
    first, second, noise = rng.normal(size=(500, 16)), rng.normal(size=(500, 16)), rng.normal(size=(500, 16))
    same, same_std = kernel_inception_distance(first, second, subsets=20, subset_size=250)
    values = [kernel_inception_distance(first, second + level * noise, subsets=20, subset_size=250)[0] for level in (1.0, 2.0, 3.0)]
    assert abs(same) < 3 * same_std < values[0]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_precision_recall_on_constructed_sets(features):
    far = features + 1000
    assert precision_recall(features, features) == (1.0, 1.0)
    assert precision_recall(features, far) == (0.0, 0.0)
    half = np.concatenate([features[:200], far[:200]])
    precision, recall = precision_recall(features, half, chunk=64)
    assert precision == 0.5  # exact copies sit inside the real manifold, far points do not
    assert 0 < recall < 1


def test_statistics_reject_bad_features(features):
    with pytest.raises(UserError, match="same extractor"):
        frechet_distance(features, features[:, :8])
    with pytest.raises(UserError, match="N >= 2"):
        frechet_distance(features[:1], features[:1])
    with pytest.raises(UserError, match="NaN"):
        frechet_distance(features, np.full_like(features, np.nan))
    with pytest.raises(UserError, match="1 <= k"):
        precision_recall(features[:3], features[:3], k=3)


class ChannelMeansWithFlag(torch.nn.Module):
    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = img.float().mean(dim=(2, 3))
        return features if return_features else features.sum(dim=1, keepdim=True)


class ChannelMaxima(torch.nn.Module):
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.float().amax(dim=(2, 3))


def test_extractor_from_a_torchscript_file_gets_8bit_images(tmp_path):
    path = tmp_path / "extractor.pt"
    torch.jit.save(torch.jit.script(ChannelMeansWithFlag()), str(path))
    extractor = load_feature_extractor(path)
    assert isinstance(extractor, FeatureExtractor) and extractor.asks_for_features
    images = torch.stack([torch.full((3, 8, 8), 1.0), torch.full((3, 8, 8), -1.0)])
    images[0, 1] = 0.0
    assert extractor(images).tolist() == [[255.0, 128.0, 255.0], [0.0, 0.0, 0.0]]  # 127.5 rounds half to even


def test_extractor_without_the_flag_is_called_plainly(tmp_path):
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(ChannelMaxima()), str(path))
    extractor = load_feature_extractor(path)
    assert not extractor.asks_for_features
    assert extractor(torch.zeros(2, 3, 4, 4)).shape == (2, 3)


def test_extractor_is_unavailable_without_a_file_and_refuses_bad_files(tmp_path):
    result = load_feature_extractor(None)
    assert isinstance(result, Unavailable) and str(result).startswith("unavailable (")
    with pytest.raises(UserError, match="does not exist"):
        load_feature_extractor(tmp_path / "missing.pt")
    state_dict_file = tmp_path / "pt_inception.pth"
    torch.save({"conv.weight": torch.zeros(2)}, state_dict_file)
    with pytest.raises(UserError, match="as TorchScript"):
        load_feature_extractor(state_dict_file)


class RandomConvFeatures(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(img.float() / 255))
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def test_fid_through_any_extractor_is_zero_on_itself_and_grows_with_noise(tmp_path, astronaut, to_model_range):
    torch.manual_seed(0)
    path = tmp_path / "random.pt"
    torch.jit.save(torch.jit.script(RandomConvFeatures()), str(path))
    extractor = load_feature_extractor(path)
    photo = to_model_range(astronaut).float()
    patches = photo.unfold(2, 32, 48).unfold(3, 32, 48).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 32, 32)
    real = extractor(patches)
    assert frechet_distance(real, extractor(patches.clone())) < 1e-9 * real.var(dim=0).sum().item()
    noise = torch.randn(patches.shape, generator=torch.Generator().manual_seed(1))
    values = [frechet_distance(real, extractor(patches + level * noise)) for level in (0.05, 0.2, 0.5)]
    assert all(a < b for a, b in zip(values, values[1:]))
