"""Stages 2 and 3 on tiny models: the denoiser learns, alignment trains only the denoiser, the CLI chains them."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.utils import set_seed

from arbiscale.cli.main import main
from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import list_images
from arbiscale.models import ImplicitAutoencoder, LatentDenoiser
from arbiscale.pipelines import UpscalePipeline, load_pipeline
from arbiscale.presets import get_preset
from arbiscale.sampling.schedulers import OBJECTIVES, make_scheduler
from arbiscale.training.diffusion import AlignmentTask, EncodedCrops, LatentDiffusionTask, SuperResolutionCrops, first_items, latent_scale_of, residual_scale_of
from arbiscale.training.loop import TrainSettings, train


def tiny_parts(photo_dir, task: str, length: int = 64):
    set_seed(0)
    preset = get_preset("tiny")
    autoencoder = ImplicitAutoencoder(**preset.autoencoder).eval()
    crops = ArbitraryScaleCrops(list_images(photo_dir), preset.latent_size, autoencoder.downsample_factor, length=length, seed=0)
    dataset = SuperResolutionCrops(crops) if task == "sr" else crops
    validation = ArbitraryScaleCrops(list_images(photo_dir), preset.latent_size, autoencoder.downsample_factor, length=8, deterministic=True)
    validation = SuperResolutionCrops(validation) if task == "sr" else validation
    denoiser = LatentDenoiser.from_preset(preset, task)
    denoiser.set_latent_scale(latent_scale_of(autoencoder, dataset, num_items=32))
    return autoencoder, denoiser, dataset, first_items(validation, 8)


def test_sr_crops_carry_a_degraded_condition_of_the_crop_size(photo_dir):
    _, _, dataset, _ = tiny_parts(photo_dir, "sr", length=4)
    item = dataset[0]
    assert item["condition_image"].shape == item["image"].shape
    assert not torch.equal(item["condition_image"], item["image"])
    assert torch.equal(dataset[0]["condition_image"], item["condition_image"])


def test_latent_scale_brings_latents_to_unit_std(photo_dir):
    autoencoder, denoiser, dataset, _ = tiny_parts(photo_dir, "gen", length=32)
    images = torch.stack([dataset[i]["image"] for i in range(32)])
    with torch.no_grad():
        scaled = autoencoder.encode(images) * denoiser.config.latent_scale
    assert scaled.std().item() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.slow
def test_tiny_ldm_lowers_its_denoising_loss_on_real_photo_crops(photo_dir, tmp_path):
    """The unconditional denoiser; the SR one learns in the residual tests below."""
    autoencoder, denoiser, dataset, validation = tiny_parts(photo_dir, "gen", length=256)
    # on a pool of the 256 crops encoded once, as the command line trains by default (`--latent-cache`)
    ldm = LatentDiffusionTask(denoiser, autoencoder, make_scheduler("ddpm"), dataset, validation, pool_size=256)
    before = ldm.validate(denoiser)["val_loss"]
    settings = TrainSettings(out_dir=tmp_path / "run", steps=120, batch_size=8, lr=2e-3, validate_every=120, checkpoint_every=120)
    saved = train(ldm, settings)
    after = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
    # Measured on CPU (pool of 256): 1.17 -> 0.111 (300 steps at lr 1e-3: 0.097);
    # an untrained UNet sits near 1.
    assert before > 0.8
    assert after < 0.3 * before, (before, after)
    pipeline = load_pipeline(saved)
    assert pipeline.denoiser.config.task == "gen"
    assert pipeline.denoiser.config.latent_scale == pytest.approx(denoiser.config.latent_scale)


def test_alignment_gradients_reach_the_denoiser_and_not_the_frozen_autoencoder(photo_dir):
    autoencoder, denoiser, dataset, validation = tiny_parts(photo_dir, "sr", length=8)
    align = AlignmentTask(denoiser, autoencoder, make_scheduler("ddpm"), dataset, validation)
    batch = first_items(dataset, 4)
    loss, logs = align.loss(denoiser, batch)
    loss.backward()
    assert set(logs) == {"loss_dm", "loss_recon"}
    assert all(p.grad is None for p in autoencoder.parameters())
    grads = [p.grad for p in denoiser.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


def test_alignment_recon_term_alone_still_trains_the_denoiser(photo_dir):
    """With the denoising term off, every gradient comes back through the frozen decoder."""
    autoencoder, denoiser, dataset, validation = tiny_parts(photo_dir, "gen", length=8)
    align = AlignmentTask(denoiser, autoencoder, make_scheduler("ddpm"), dataset, validation, denoise_weight=0.0)
    loss, _ = align.loss(denoiser, first_items(dataset, 4))
    loss.backward()
    assert sum(p.grad.abs().sum().item() for p in denoiser.parameters()) > 0


@pytest.mark.slow
def test_cli_chains_the_three_stages_into_a_usable_upscaler(photo_dir, tmp_path):
    runs = tmp_path / "runs"
    common = ["--data", str(photo_dir), "--preset", "tiny", "--steps", "4", "--batch-size", "2", "--checkpoint-every", "2", "--validate-every", "4"]
    assert main(["train", "autoencoder", "--out", str(runs / "ae"), *common]) == 0
    pool = ["--latent-cache", "16"]  # the default pool (16384 crops) took most of this test's time
    assert main(["train", "ldm", "--task", "sr", "--autoencoder", str(runs / "ae" / "model"), "--out", str(runs / "ldm"), *common, *pool]) == 0
    assert main(["train", "align", "--model", str(runs / "ldm" / "model"), "--out", str(runs / "align"), *common, *pool]) == 0
    log = [json.loads(line) for line in (runs / "align" / "metrics.jsonl").read_text().splitlines()]
    assert "val_psnr_onestep" in log[-1] and log[-1]["step"] == 4
    pipeline = UpscalePipeline.from_pretrained(runs / "align" / "model")
    out = pipeline(torch.zeros(1, 3, 10, 14), scale=2.3, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 3, 23, 32)


def test_cli_rejects_an_autoencoder_of_another_preset(photo_dir, tmp_path, capsys):
    ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "latent_channels": 5}).save_pretrained(tmp_path / "ae")
    code = main(["train", "ldm", "--task", "gen", "--autoencoder", str(tmp_path / "ae"), "--data", str(photo_dir), "--preset", "tiny", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3-channel" in err[0] and "makes 5" in err[0]


def test_encoded_pool_holds_the_latents_of_the_crops_and_is_read_back_not_encoded_again(photo_dir, tmp_path):
    autoencoder, _, dataset, _ = tiny_parts(photo_dir, "sr", length=4)
    cache = tmp_path / "run" / "encoded_crops.safetensors"
    pool = EncodedCrops(dataset, autoencoder, 6, batch_size=4, cache_file=cache)  # 6 > 4: the second epoch's crops too
    assert len(pool) == 6 and cache.is_file()
    dataset.set_epoch(1)
    item = dataset[1]
    with torch.no_grad():
        assert torch.allclose(pool[5]["latent"], autoencoder.encode(item["image"][None])[0], atol=1e-5)
        assert torch.allclose(pool[5]["condition_latent"], autoencoder.encode(item["condition_image"][None])[0], atol=1e-5)
    assert torch.equal(pool[5]["target"], item["target"]) and "image" not in pool[5]

    class NoEncoding(torch.nn.Module):
        def encode(self, images):
            raise AssertionError("a saved pool must be read back, not encoded again")

        def parameters(self, recurse=True):
            return autoencoder.parameters()

    again = EncodedCrops(dataset, NoEncoding(), 6, cache_file=cache)
    assert torch.equal(again[5]["latent"], pool[5]["latent"])
    other_size = EncodedCrops(dataset, autoencoder, 5, batch_size=4, cache_file=cache)  # another size: encoded afresh
    assert torch.allclose(other_size[4]["latent"], pool[4]["latent"], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["epsilon", "v-zero-snr"])
def test_residual_v_objective_learns_and_its_one_step_estimate_improves(photo_dir, tmp_path, objective):
    autoencoder, _, dataset, validation = tiny_parts(photo_dir, "sr", length=128)
    denoiser = LatentDenoiser.from_preset(get_preset("tiny"), "sr", residual=True)
    denoiser.set_latent_scale(latent_scale_of(autoencoder, dataset, num_items=32))
    denoiser.set_residual_scale(residual_scale_of(autoencoder, dataset, denoiser.config.latent_scale, num_items=32))
    ldm = LatentDiffusionTask(denoiser, autoencoder, make_scheduler("ddpm", **OBJECTIVES[objective]), dataset, validation, pool_size=64)
    before = ldm.validate(denoiser)["val_clean_mse"]
    train(ldm, TrainSettings(out_dir=tmp_path / "run", steps=100, batch_size=8, lr=1e-3, validate_every=100, checkpoint_every=100))
    after = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["val_clean_mse"]
    assert (tmp_path / "run" / "encoded_crops.safetensors").is_file()
    # Measured on CPU: epsilon 48.2 -> 2.49 (its t = T estimate divides by a tiny sqrt(alpha)); v-zero-snr 0.118 -> 0.0997
    # (150 steps: 1.63 and 0.100; 75 steps: 3.71 and 0.102)
    assert after < 0.9 * before, (before, after)


@pytest.mark.slow
def test_init_from_fine_tunes_a_saved_denoiser_keeping_its_scales_and_objective(photo_dir, tiny_models, tmp_path, capsys):
    """`train ldm --init-from MODEL` starts from MODEL's denoiser (and autoencoder), on a cosine schedule
    after a warm-up: the learning rate rises, then decays to zero at the last step."""
    start = load_pipeline(tiny_models / "sr")
    common = ["--task", "sr", "--data", str(photo_dir), "--preset", "tiny", "--batch-size", "2", "--latent-cache", "8"]
    run = tmp_path / "ft"
    argv = [*common, "--init-from", str(tiny_models / "sr"), "--steps", "4", "--lr", "1e-3", "--lr-schedule", "cosine", "--warmup-steps", "2", "--log-every", "1"]
    assert main(["train", "ldm", *argv, "--out", str(run)]) == 0
    tuned = load_pipeline(run / "model")
    assert tuned.denoiser.config.latent_scale == start.denoiser.config.latent_scale == 50.0
    assert tuned.scheduler.config.prediction_type == "epsilon" and not tuned.denoiser.config.residual
    first = next(iter(start.denoiser.state_dict().values()))
    assert not torch.equal(next(iter(tuned.denoiser.state_dict().values())), first)
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines() if "lr" in json.loads(line)]
    assert lrs[0] < lrs[1] == pytest.approx(1e-3) and lrs[1] > lrs[2] > lrs[3] == 0.0, lrs
    capsys.readouterr()
    for extra, expected in ((["--objective", "v-zero-snr"], "objective epsilon"), (["--residual"], "--no-residual"), (["--task", "gen"], "'sr' denoiser")):
        assert main(["train", "ldm", *common, "--init-from", str(tiny_models / "sr"), *extra, "--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert main(["train", "ldm", *common, "--out", str(tmp_path / "refused")]) == 2
    assert "--autoencoder is required" in capsys.readouterr().err


def test_align_takes_a_bundled_model_by_name(tmp_path, capsys):
    """`train align --model photos` loads the bundled upscaler (as `train ldm --init-from photos` does); the run
    then stops at the empty data folder, past the model."""
    assert main(["train", "align", "--model", "photos", "--preset", "small", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no images in {tmp_path}" in err[0], err
