"""The LIIF baseline's training stage: its items, a learning test through the real loop, the CLI and resume.

Learning test, measured on CPU, one thread, 500 steps (about 11 s beside another job): three runs (seeds 0,
1, 2) on a 48x48 crop of the astronaut's flag (white stars on blue) reached 28.6-29.3 dB at 4x (12x12 ->
48x48) and 32.4-32.9 dB at 3x (16x16 -> 48x48), 1.7-2.4 and 1.5-1.9 dB over bicubic (`data.images.resize`:
26.9 and 31.0 dB; 1000 steps reached 30.0-30.5 and 33.1-33.9 dB). The thresholds keep 0.6 dB of margin
below the worst run, for the PSNRs and the margins.
"""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.utils import set_seed
from PIL import Image

from arbiscale.cli.main import main
from arbiscale.data.crops import uint8_to_float
from arbiscale.data.images import list_images, resize
from arbiscale.geometry import scaled_size
from arbiscale.metrics.psnr_ssim import psnr
from arbiscale.models.liif import LIIF
from arbiscale.models.loading import load_component
from arbiscale.presets import get_preset
from arbiscale.training.liif import MAX_SCALE, DownscaledWindows, LIIFTask, validation_references
from arbiscale.training.loop import TrainSettings, train


def test_items_are_shrunk_windows_with_their_own_pixels_as_targets(photo_dir):
    dataset = DownscaledWindows(list_images(photo_dir), (8, 8), length=40, seed=1)
    sides = []
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["lr"].shape == (3, 8, 8) and item["coord"].shape == (64, 2) and item["target"].shape == (64, 3)
        side = round(2 / item["cell"][0].item())
        _, scale, _ = dataset.crop_and_scale(index)
        assert (side, side) == scaled_size((8, 8), scale)  # the window is s x the input, s drawn as stage 1 draws it
        levels = (item["target"] + 1) * 127.5
        assert torch.allclose(levels, levels.round(), atol=1e-3)  # 8-bit photo pixels, not resampled values
        sides.append(side)
    assert 8 <= min(sides) < 14 and 26 < max(sides) <= 8 * MAX_SCALE
    again = dataset[5]
    assert all(torch.equal(again[key], dataset[5][key]) for key in again)
    dataset.set_epoch(1)
    assert not torch.equal(again["lr"], dataset[5]["lr"])


@pytest.mark.slow
def test_liif_overfits_a_photo_crop_and_beats_bicubic_at_4x_and_3x(tmp_path, real_photos):
    photo = tmp_path / "stars.png"
    Image.fromarray(real_photos["astronaut"][:48, :48]).save(photo)  # stars of the flag, 48x48
    set_seed(0)
    liif = LIIF(**get_preset("tiny").liif)
    dataset = DownscaledWindows([photo], (12, 12), length=64)
    task = LIIFTask(liif, dataset, validation_references([photo], (12, 12)))
    settings = TrainSettings(out_dir=tmp_path / "run", steps=500, batch_size=4, lr=2e-3, log_every=100, validate_every=500, checkpoint_every=500)
    model = load_component(LIIF, train(task, settings))

    hr = uint8_to_float(torch.from_numpy(real_photos["astronaut"][:48, :48]).permute(2, 0, 1))[None]
    scores = {}
    with torch.no_grad():
        for scale in (4, 3):
            low = resize(hr, (48 // scale, 48 // scale))
            scores[scale] = (psnr(model.upscale(low, (48, 48)), hr).item(), psnr(resize(low, (48, 48)), hr).item())
    (ours_4, bicubic_4), (ours_3, bicubic_3) = scores[4], scores[3]
    assert ours_4 > 28.0 and ours_4 - bicubic_4 > 1.1, scores
    assert ours_3 > 31.8 and ours_3 - bicubic_3 > 0.85, scores
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_psnr_4x"] == pytest.approx(ours_4, abs=1e-3)


def test_cli_trains_resumes_and_saves_a_strictly_loadable_model(tmp_path, photo_dir, capsys, quick_train):
    assert main(quick_train("liif", photo_dir, tmp_path / "whole", "--num-queries", "32", "--steps", "4")) == 0
    assert "saved the LIIF model" in capsys.readouterr().err
    assert main(quick_train("liif", photo_dir, tmp_path / "split", "--num-queries", "32", "--steps", "2")) == 0
    assert main(quick_train("liif", photo_dir, tmp_path / "split", "--num-queries", "32", "--steps", "4", "--resume")) == 0
    assert "resuming from" in capsys.readouterr().err

    whole, split = (load_component(LIIF, tmp_path / run / "model") for run in ("whole", "split"))
    assert whole.config.channels == get_preset("tiny").liif["channels"]
    for (name, tensor), (_, resumed) in zip(whole.state_dict().items(), split.state_dict().items()):
        assert torch.allclose(resumed, tensor, atol=1e-6), name
    lines = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("whole", "split")]
    assert [line["step"] for line in lines[1]] == [2, 4] and "val_psnr_4x" in lines[1][-1]
    assert [line["loss"] for line in lines[1]] == pytest.approx([line["loss"] for line in lines[0]], abs=1e-6)
    recorded = json.loads((tmp_path / "whole" / "settings.json").read_text())
    assert recorded["lr"] == get_preset("tiny").liif_lr


@pytest.mark.parametrize(("options", "named"), [(["--num-queries", "0"], "--num-queries"), (["--preset", "huge"], "unknown preset")])
def test_cli_rejects_bad_options_in_one_line(tmp_path, photo_dir, capsys, options, named, quick_train):
    assert main(quick_train("liif", photo_dir, tmp_path / "run", "--num-queries", "32", *options)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err
    assert not (tmp_path / "run").exists()


def test_validation_renders_fixed_crops_at_4x(photo_dir):
    paths = list_images(photo_dir)
    references = validation_references(paths, (8, 8))
    assert references.shape == (4, 3, 32, 32)
    torch.manual_seed(0)
    task = LIIFTask(LIIF(**get_preset("tiny").liif).eval(), DownscaledWindows(paths, (8, 8), length=4), references)
    with torch.no_grad():
        first, second = task.validate(task.model), task.validate(task.model)
    assert set(first) == {"val_psnr_4x"} and first == second and 5 < first["val_psnr_4x"] < 40
