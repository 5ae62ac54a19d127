"""Learning test: the encoder + implicit decoder overfit one real photo crop through the real training loop.

Measured on CPU, one thread, 200 steps (about 30 s beside another job): three runs (seeds 0, 1, 2) reached
27.8-28.5 dB at 1x (48x48) and 29.6-30.8 dB at 2.5x of the 12x12 latent (30x30); bicubic upsampling of
the 12x12 image scores 26.5 and 28.0 dB (400 steps reached 30.1-30.7 and 33.3-34.3 dB). The thresholds
keep about 0.6-0.7 dB of margin below the worst run, for the PSNRs and for the margins over bicubic alike.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from PIL import Image

from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import resize
from arbiscale.metrics.psnr_ssim import psnr
from arbiscale.models.autoencoder import ImplicitAutoencoder, with_head_blend
from arbiscale.models.loading import load_component
from arbiscale.presets import get_preset
from arbiscale.training.autoencoder import AutoencoderTask, validation_crops
from arbiscale.training.loop import TrainSettings, train


@pytest.mark.slow
def test_autoencoder_overfits_a_photo_crop_and_beats_bicubic_at_1x_and_2_5x(tmp_path, real_photos):
    photo = tmp_path / "eye.png"
    Image.fromarray(real_photos["chelsea"][80:128, 140:188]).save(photo)  # the cat's eye, 48x48
    set_seed(0)
    # The tiny preset with one more level: f = 4, as in the paper, so a 12x12x3 latent describes 48x48.
    autoencoder = ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "channel_mult": (1, 2, 2)})
    assert autoencoder.downsample_factor == 4
    latent_size = (12, 12)
    dataset = ArbitraryScaleCrops([photo], latent_size, 4, num_queries=576, length=64, augment="none")
    task = AutoencoderTask(autoencoder, dataset, validation_crops([photo], latent_size, 4, count=1))
    assert task.validation_scale == 2.5
    settings = TrainSettings(out_dir=tmp_path / "run", steps=200, batch_size=4, lr=2e-3, log_every=50, validate_every=200, checkpoint_every=200)
    model = load_component(ImplicitAutoencoder, train(task, settings))

    crop = task.validation_images
    low = resize(crop, latent_size)
    scores = {}
    with torch.no_grad():
        latent = model.encode(crop)
        for size in [(48, 48), (30, 30)]:
            reference = resize(crop, size)
            bicubic = F.interpolate(low, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)
            scores[size] = (psnr(model.decode(latent, size), reference).item(), psnr(bicubic, reference).item())
    (ours_1x, bicubic_1x), (ours_25, bicubic_25) = scores[(48, 48)], scores[(30, 30)]
    assert ours_1x > 27.1, scores
    assert ours_25 > 29.0, scores
    assert ours_1x - bicubic_1x > 0.6, scores
    assert ours_25 - bicubic_25 > 1.0, scores

    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_psnr"] == pytest.approx(ours_1x, abs=1e-3)
    assert last["val_psnr_2.5x_latent"] == pytest.approx(ours_25, abs=1e-3)


@pytest.mark.slow
def test_decoder_alone_learns_the_photo_crop_through_a_frozen_random_encoder(tmp_path, real_photos):
    """The first-layer-blend head, trained with the encoder frozen (`train decoder`). Measured: from
    10.8 dB to 26.5 dB in 100 steps (150 steps: 28.0 dB; the outputs-blend head: 27.4 dB); the encoder stays as it was."""
    photo = tmp_path / "eye.png"
    Image.fromarray(real_photos["chelsea"][80:128, 140:188]).save(photo)
    set_seed(0)
    autoencoder = with_head_blend(ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "channel_mult": (1, 2, 2)}), "first-layer")
    encoder = {key: value.clone() for key, value in autoencoder.encoder.state_dict().items()}
    dataset = ArbitraryScaleCrops([photo], (12, 12), 4, num_queries=576, length=64, augment="none")
    task = AutoencoderTask(autoencoder, dataset, validation_crops([photo], (12, 12), 4, count=1), train_encoder=False)
    settings = TrainSettings(out_dir=tmp_path / "run", steps=100, batch_size=4, lr=2e-3, log_every=50, validate_every=100, checkpoint_every=100)
    model = load_component(ImplicitAutoencoder, train(task, settings))
    crop = task.validation_images
    with torch.no_grad():
        score = psnr(model.decode(model.encode(crop), (48, 48)), crop).item()
    assert score > 25.0
    assert all(torch.equal(model.encoder.state_dict()[key], value) for key, value in encoder.items())
