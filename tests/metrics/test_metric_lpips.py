"""LPIPS math with random weights (never a published number: those need the real files)."""

import pytest
import torch
import torch.nn.functional as F

from arbiscale.errors import UserError
from arbiscale.metrics import LPIPS, Unavailable, load_lpips

CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def random_files(tmp_path, generator):
    """A torchvision-style AlexNet state dict (classifier included) and lpips-style linear heads."""
    backbone = {}
    for index, (out_c, in_c, k) in CONVS.items():
        backbone[f"features.{index}.weight"] = torch.randn(out_c, in_c, k, k, generator=generator) * (2 / (in_c * k * k)) ** 0.5
        backbone[f"features.{index}.bias"] = torch.randn(out_c, generator=generator) * 0.1
    backbone["classifier.1.weight"] = torch.zeros(4, 9216)
    heads = {f"lin{n}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for n, (c, _, _) in enumerate(CONVS.values())}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    return backbone, heads


@pytest.fixture
def weights(tmp_path):
    return random_files(tmp_path, torch.Generator().manual_seed(0))


def reference_lpips(x0, x1, backbone, heads):
    """LPIPS written out with functional ops on the raw state dicts."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(x):
        x = (x - shift) / scale
        out = []
        for index, (_, _, k) in CONVS.items():
            if index in (3, 6):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            stride, padding = (4, 2) if index == 0 else (1, k // 2)
            x = torch.relu(F.conv2d(x, backbone[f"features.{index}.weight"], backbone[f"features.{index}.bias"], stride=stride, padding=padding))
            out.append(x)
        return out

    total = 0
    for n, (a, b) in enumerate(zip(taps(x0), taps(x1))):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        weighted = ((a - b) ** 2 * heads[f"lin{n}.model.1.weight"]).sum(dim=1)
        total = total + weighted.mean(dim=(1, 2))
    return total


def test_lpips_forward_follows_the_definition(tmp_path, weights):
    model = load_lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    assert isinstance(model, LPIPS)
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 64, 48, generator=generator) * 2 - 1
    x1 = torch.rand(2, 3, 64, 48, generator=generator) * 2 - 1
    result = model(x0, x1)
    assert result.shape == (2,)
    assert torch.allclose(result, reference_lpips(x0, x1, *weights), rtol=1e-5, atol=1e-7)
    assert (result > 0).all()
    assert torch.allclose(model(x1, x0), result, rtol=1e-6)
    assert model(x0, x0).abs().max() == 0


def test_lpips_parameters_are_frozen(tmp_path, weights):
    model = load_lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_lpips_is_unavailable_without_weights():
    result = load_lpips(None, None)
    assert isinstance(result, Unavailable)
    assert str(result).startswith("unavailable (") and "LPIPS" in result.reason


def test_lpips_refuses_bad_or_partial_files(tmp_path, weights):
    backbone, heads = weights
    with pytest.raises(UserError, match="both"):
        load_lpips(tmp_path / "alexnet.pth", None)
    with pytest.raises(UserError, match="does not exist"):
        load_lpips(tmp_path / "nope.pth", tmp_path / "alex.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read AlexNet weights"):
        load_lpips(tmp_path / "garbage.pth", tmp_path / "alex.pth")
    del heads["lin4.model.1.weight"]
    torch.save(heads, tmp_path / "partial.pth")
    with pytest.raises(UserError, match="missing lin4.model.1.weight"):
        load_lpips(tmp_path / "alexnet.pth", tmp_path / "partial.pth")
    backbone["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(backbone, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="wrong shape for convs.1.weight"):
        load_lpips(tmp_path / "wrong.pth", tmp_path / "alex.pth")


def test_lpips_states_its_minimum_size(tmp_path, weights):
    model = load_lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    assert model(torch.zeros(1, 3, 31, 31), torch.ones(1, 3, 31, 31)).shape == (1,)
    with pytest.raises(UserError, match="at least 31x31"):
        model(torch.zeros(1, 3, 30, 64), torch.zeros(1, 3, 30, 64))
