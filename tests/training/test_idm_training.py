"""The IDM-style baseline's training stage: a learning test through the real loop, the CLI, resume and inference.

Learning test, measured on CPU, one thread, 100 steps (17 s beside two training runs): on a 16x16 crop of the
astronaut's flag (seeds 1 and 2; the test runs seed 0) the validation loss (v-prediction, fixed noise and
levels) fell from 0.52-0.58 to 0.012-0.016 and the one-step clean estimate's PSNR rose from 8.7-9.1 to
24.5-25.7 dB; the thresholds (a fifth of the loss, +8 dB) keep wide margins. Sampling an overfit image-space
diffusion model until it beats bicubic took more than 800 steps here, too long for the suite; the trained model's real score is the side-by-side table (BENCHMARKS.md).
"""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.utils import set_seed
from PIL import Image

from arbiscale.baselines.idm import IDMStyleSR
from arbiscale.cli.main import main
from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import resize
from arbiscale.models.loading import load_component
from arbiscale.presets import get_preset
from arbiscale.training.diffusion import SuperResolutionCrops, first_items
from arbiscale.training.idm import IDMTask
from arbiscale.training.loop import TrainSettings, train

STEPS = 100


def test_a_given_lr_scale_is_what_the_sizes_say(photo_dir):
    torch.manual_seed(0)
    model = IDMStyleSR.from_preset("tiny").eval()
    lr = torch.rand(2, 3, 6, 8) * 2 - 1
    noisy = torch.randn(2, 3, 18, 20)
    with torch.no_grad():
        implied = model(noisy, torch.tensor([3, 700]), lr)
        given = model(noisy, torch.tensor([3, 700]), resize(lr, (18, 20)), torch.tensor([[3.0, 2.5], [3.0, 2.5]]))
        other = model(noisy, torch.tensor([3, 700]), resize(lr, (18, 20)), torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    assert torch.allclose(implied, given, atol=1e-5)  # training's resized-back LR + scale == inference's LR
    assert not torch.allclose(implied, other, atol=1e-3)  # the scale is seen


@pytest.mark.slow
def test_idm_learns_to_denoise_a_photo_crop(tmp_path, real_photos):
    Image.fromarray(real_photos["astronaut"][:16, :16]).save(tmp_path / "stars.png")
    set_seed(0)
    crops = ArbitraryScaleCrops([tmp_path / "stars.png"], (4, 4), 4, length=64, augment="none")
    fixed = ArbitraryScaleCrops([tmp_path / "stars.png"], (4, 4), 4, length=4, deterministic=True, augment="none")
    task = IDMTask(IDMStyleSR(**get_preset("tiny").unet), SuperResolutionCrops(crops, 2.0, 6.0), first_items(SuperResolutionCrops(fixed, 2.0, 2.0), 4))
    with torch.no_grad():
        before = task.validate(task.model.eval())
    settings = TrainSettings(out_dir=tmp_path / "run", steps=STEPS, batch_size=4, lr=2e-3, log_every=50, validate_every=STEPS, checkpoint_every=STEPS)
    trained = load_component(IDMStyleSR, train(task, settings))
    after = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert after["val_loss"] < 0.2 * before["val_loss"], (before, after)
    assert after["val_psnr_onestep"] > before["val_psnr_onestep"] + 8, (before, after)
    assert trained.upscale(torch.zeros(1, 3, 4, 4), (16, 16)).shape == (1, 3, 16, 16)


@pytest.mark.slow
def test_cli_trains_resumes_and_the_model_upscales_and_evaluates(tmp_path, photo_dir, capsys, quick_train):
    assert main(quick_train("idm", photo_dir, tmp_path / "whole", "--steps", "4")) == 0
    assert "saved the IDM-style model" in capsys.readouterr().err
    assert main(quick_train("idm", photo_dir, tmp_path / "split", "--steps", "2")) == 0
    assert main(quick_train("idm", photo_dir, tmp_path / "split", "--steps", "4", "--resume")) == 0
    whole, split = (load_component(IDMStyleSR, tmp_path / run / "model") for run in ("whole", "split"))
    assert whole.config.objective == "v-zero-snr"
    for (name, tensor), (_, resumed) in zip(whole.state_dict().items(), split.state_dict().items()):
        assert torch.allclose(resumed, tensor, atol=1e-6), name
    capsys.readouterr()

    model = str(tmp_path / "whole" / "model")
    photo = str(photo_dir / "coffee.png")
    upscale = ["upscale", photo, "--size", "40x30", "--model", model, "--num-samples", "2", "--steps", "2", "--seed", "5"]
    assert main([*upscale, "-o", str(tmp_path / "a")]) == 0
    assert main([*upscale, "-o", str(tmp_path / "b")]) == 0
    outputs = sorted((tmp_path / "a").iterdir())
    assert [path.name for path in outputs] == ["coffee_40x30_seed5.png", "coffee_40x30_seed6.png"]
    assert all(Image.open(path).size == (40, 30) for path in outputs)
    assert all(path.read_bytes() == (tmp_path / "b" / path.name).read_bytes() for path in outputs)  # the seed fixes each sample
    assert outputs[0].read_bytes() != outputs[1].read_bytes()
    assert main([*upscale, "-o", str(tmp_path / "c"), "--tile", "8"]) == 2
    assert "is an IDM-style model" in capsys.readouterr().err

    report, small = tmp_path / "report", tmp_path / "small"
    small.mkdir()
    Image.open(photo_dir / "coffee.png").crop((0, 0, 64, 48)).save(small / "coffee.png")  # the UNet runs at output size
    assert (
        main(
            ["eval", "sr", "--model", model, "--data", str(small), "--scales", "2,3", "--max-images", "1", "--steps", "2", "--samples", "2", "--no-progress", "--out", str(report)]
        )
        == 0
    )
    results = json.loads((report / "results.json").read_text())
    assert results["model_classes"] == ["IDMStyleSR"] and results["sampler"] == "ddim" and results["steps"] == 2
    for scale in ("2", "3"):
        idm = results["results"][scale]["methods"]["idm"]
        assert idm["seconds"] > 0 and idm["diversity"] > 0 and 0 < idm["ssim"] < 1
    assert "| idm |" in (report / "report.md").read_text()
