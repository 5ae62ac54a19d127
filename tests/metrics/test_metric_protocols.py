import pytest

from arbiscale.errors import UserError
from arbiscale.metrics import PROTOCOLS, metric_settings, psnr, ssim


@pytest.mark.parametrize(
    ("name", "scale", "channel", "border"),
    [
        ("liif-benchmark", 4, "y", 4),
        ("liif-benchmark", 2.5, "y", 3),
        ("liif-div2k", 4, "rgb", 10),
        ("liif-div2k", 12, "rgb", 18),
        ("paper", 4, "rgb", 0),
        ("paper", 10.7, "rgb", 0),
    ],
)
def test_protocol_settings(name, scale, channel, border):
    settings = metric_settings(name, scale)
    assert (settings.channel, settings.crop_border, settings.resize) == (channel, border, "matlab")
    assert settings.as_dict() == {"protocol": name, "scale": float(scale), "channel": channel, "crop_border": border, "resize": "matlab"}


def test_settings_compute_the_protocol_metrics(photo_pair, to_model_range):
    clean, noisy = (to_model_range(a) for a in photo_pair)
    settings = metric_settings("liif-benchmark", 3, resize="pil")
    assert settings.resize == "pil"
    assert settings.psnr(noisy, clean).item() == psnr(noisy, clean, channel="y", crop_border=3).item()
    assert settings.ssim(noisy, clean).item() == ssim(noisy, clean, channel="y", crop_border=3).item()
    assert settings.psnr(noisy, clean).item() != metric_settings("paper", 3).psnr(noisy, clean).item()


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UserError, match="liif-benchmark, liif-div2k, paper"):
        metric_settings("basicsr", 4)
    with pytest.raises(UserError, match="matlab, pil"):
        metric_settings("paper", 4, resize="bilinear")
    with pytest.raises(UserError, match="positive"):
        metric_settings("paper", 0)
    assert PROTOCOLS == ("liif-benchmark", "liif-div2k", "paper")
