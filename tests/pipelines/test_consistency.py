import torch
import torch.nn.functional as F

from arbiscale.data.images import resize
from arbiscale.pipelines.consistency import enforce_low_res_consistency


def _lr_error(images: torch.Tensor, low_res: torch.Tensor) -> float:
    return (resize(images, tuple(low_res.shape[-2:])) - low_res).pow(2).mean().item()


def test_banded_correction_is_the_bicubic_upsampled_residual():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 37, 53) * 1.6 - 0.8
    low_res = torch.rand(2, 3, 9, 13) * 1.6 - 0.8
    shrunk = F.interpolate(images, size=(9, 13), mode="bicubic", antialias=True, align_corners=False)
    expected = (images + F.interpolate(low_res - shrunk, size=(37, 53), mode="bicubic", align_corners=False)).clamp(-1, 1)
    corrected = enforce_low_res_consistency(images.clone(), low_res, band_rows=5)
    assert torch.allclose(corrected, expected, atol=1e-5)


def test_a_colour_cast_is_removed_and_detail_kept(real_photos):
    photo = torch.from_numpy(real_photos["coffee"][:96, :128]).permute(2, 0, 1).float() / 127.5 - 1
    low_res = resize(photo, (24, 32))
    cast = photo.clone()
    cast[2] += 0.3  # a blue cast, the failure of an under-trained latent denoiser
    before = _lr_error(cast.unsqueeze(0), low_res.unsqueeze(0))
    corrected = enforce_low_res_consistency(cast.unsqueeze(0), low_res.unsqueeze(0))[0]
    assert _lr_error(corrected.unsqueeze(0), low_res.unsqueeze(0)) < before / 20
    bicubic = F.interpolate(low_res.unsqueeze(0), size=(96, 128), mode="bicubic", align_corners=False)[0]
    assert (corrected - photo).pow(2).mean() < (bicubic.clamp(-1, 1) - photo).pow(2).mean()


def test_upscale_pipeline_output_shrinks_back_to_its_input(upscaler, real_photos):
    """The random tiny model's output is far from its input when shrunk; with the option it is not."""
    photo = torch.from_numpy(real_photos["chelsea"][100:132, 150:198]).permute(2, 0, 1).float() / 127.5 - 1
    options = dict(scale=2.5, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    raw = upscaler(photo, lr_consistency=False, **options).images
    options["generator"] = torch.Generator().manual_seed(0)
    consistent = upscaler(photo, lr_consistency=True, **options).images
    assert consistent.shape == raw.shape == (1, 3, 80, 120)
    assert _lr_error(consistent, photo.unsqueeze(0)) < _lr_error(raw, photo.unsqueeze(0)) / 10
