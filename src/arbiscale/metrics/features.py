"""FID, KID and precision/recall over feature matrices, and a user-given feature extractor.

The statistics take (N, D) features as numpy arrays or torch tensors and work in float64. The usual
extractor is NVIDIA's TorchScript Inception (`inception-2015-12-05.pt`, used by StyleGAN2-ADA and
clean-fid); pytorch-fid's `pt_inception-2015-12-05-*.pth` is a plain state dict for a torchvision-style
network and cannot be loaded here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .color import to_unit
from .weights import Unavailable, load_torchscript


def _matrix(features: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise UserError(f"{name} features must be a matrix (N, D) with N >= 2, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise UserError(f"{name} features contain NaN or inf: check the images and the extractor")
    return array


def _pair(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    real_m, fake_m = _matrix(real, "real"), _matrix(fake, "generated")
    if real_m.shape[1] != fake_m.shape[1]:
        raise UserError(f"feature sizes differ ({real_m.shape[1]} vs {fake_m.shape[1]}): use the same extractor for both sets")
    return real_m, fake_m


def frechet_distance(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    """FID between Gaussians fitted to two feature sets (means, ddof=1 covariances, as pytorch-fid).

    tr sqrt(S1 S2) is the sum of square roots of the eigenvalues of S1 S2 (real and >= 0 for PSD S1, S2;
    round-off below 0 is clipped), which avoids sqrtm's complex round-off.
    """
    real_m, fake_m = _pair(real, fake)
    mean_diff = real_m.mean(axis=0) - fake_m.mean(axis=0)
    cov_real = np.atleast_2d(np.cov(real_m, rowvar=False))
    cov_fake = np.atleast_2d(np.cov(fake_m, rowvar=False))
    eigenvalues = np.linalg.eigvals(cov_real @ cov_fake).real.clip(min=0)
    value = mean_diff @ mean_diff + np.trace(cov_real) + np.trace(cov_fake) - 2 * np.sqrt(eigenvalues).sum()
    return float(max(value, 0.0))


def kernel_inception_distance(
    real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) over random subsets of the unbiased MMD^2 with kernel (x.y / D + 1)^3 (Binkowski et al.).

    Subsets are drawn without replacement, of min(subset_size, N_real, N_fake) rows, from `seed`.
    """
    real_m, fake_m = _pair(real, fake)
    if subsets < 1:
        raise UserError(f"KID needs at least one subset, got {subsets}")
    size = min(subset_size, len(real_m), len(fake_m))
    dim = real_m.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real_m[rng.choice(len(real_m), size, replace=False)]
        y = fake_m[rng.choice(len(fake_m), size, replace=False)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def _covered(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """Whether each probe lies inside some manifold point's k-NN ball."""
    inside = [(torch.cdist(part, manifold) <= radii).any(dim=1) for part in probes.split(chunk)]
    return torch.cat(inside)


def _knn_radii(points: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    # k + 1: each point is its own nearest neighbour at distance 0.
    return torch.cat([torch.cdist(part, points).kthvalue(k + 1, dim=1).values for part in points.split(chunk)])


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, *, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): (fraction of generated features inside the
    real k-NN manifold, fraction of real features inside the generated one)."""
    real_m, fake_m = _pair(real, fake)
    if not 1 <= k < min(len(real_m), len(fake_m)):
        raise UserError(f"precision/recall needs 1 <= k < the number of features in each set, got k={k}")
    real_t, fake_t = torch.from_numpy(real_m), torch.from_numpy(fake_m)
    precision = _covered(fake_t, real_t, _knn_radii(real_t, k, chunk), chunk).double().mean()
    recall = _covered(real_t, fake_t, _knn_radii(fake_t, k, chunk), chunk).double().mean()
    return float(precision), float(recall)


class FeatureExtractor(torch.nn.Module):
    """Images (B,3,H,W) in [-1, 1] -> (B, D) float32 features from a TorchScript network.

    The network gets uint8 images (B,3,H,W) in [0, 255], the input of NVIDIA's Inception (which resizes
    to 299 itself); `return_features=True` is passed when its forward takes that argument.
    """

    distance_names = ("FID", "KID")  # what the Frechet and kernel distances on these features are called

    def __init__(self, network: torch.jit.ScriptModule, source: str) -> None:
        super().__init__()
        self.network = network.eval()
        self.source = source
        arguments = [argument.name for argument in network.forward.schema.arguments]
        self.asks_for_features = "return_features" in arguments

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise UserError(f"feature extraction expects RGB images (B,3,H,W), got {tuple(images.shape)}")
        pixels = torch.round(to_unit(images.clamp(-1, 1)) * 255).to(torch.uint8)
        output = self.network(pixels, return_features=True) if self.asks_for_features else self.network(pixels)
        if not isinstance(output, torch.Tensor) or output.shape[0] != images.shape[0]:
            raise UserError(f"the feature extractor {self.source} did not return one feature row per image: give an image-to-features network")
        return output.reshape(images.shape[0], -1).float()


def load_feature_extractor(path: str | Path | None) -> FeatureExtractor | Unavailable:
    """The TorchScript extractor at `path`, or Unavailable when no path is given (FID/KID/PR then unavailable)."""
    if path is None:
        return Unavailable("no Inception feature extractor given; pass the path of a TorchScript file such as inception-2015-12-05.pt")
    network = load_torchscript(path, "feature extractor")
    return FeatureExtractor(network, str(path))
