from __future__ import annotations

import json

import pytest
import torch
from accelerate.utils import set_seed

from arbiscale.cli.main import main
from arbiscale.data.crops import ArbitraryScaleCrops
from arbiscale.data.images import list_images
from arbiscale.geometry import cell_size, coord_grid
from arbiscale.models.autoencoder import ImplicitAutoencoder
from arbiscale.models.loading import load_component
from arbiscale.presets import get_preset
from arbiscale.training.autoencoder import AutoencoderTask, ReconstructionObjective, validation_crops
from arbiscale.training.loop import TrainSettings, train


def tiny_task(photo_dir, **autoencoder_overrides) -> AutoencoderTask:
    set_seed(0)
    preset = get_preset("tiny")
    autoencoder = ImplicitAutoencoder(**{**preset.autoencoder, **autoencoder_overrides})
    paths = list_images(photo_dir)
    dataset = ArbitraryScaleCrops(paths, preset.latent_size, autoencoder.downsample_factor, length=8, seed=0)
    return AutoencoderTask(autoencoder, dataset, validation_crops(paths, preset.latent_size, autoencoder.downsample_factor, count=3))


def test_saved_model_loads_back_with_identical_outputs(tmp_path, photo_dir):
    task = tiny_task(photo_dir)
    model_dir = train(task, TrainSettings(out_dir=tmp_path / "run", steps=3, batch_size=4, lr=1e-3, validate_every=3))
    trained = task.model.autoencoder.eval()
    loaded = load_component(ImplicitAutoencoder, model_dir)
    images = task.validation_images
    with torch.no_grad():
        latent = trained.encode(images)
        assert torch.equal(loaded.encode(images), latent)
        assert torch.equal(loaded.decode(latent, (21, 13)), trained.decode(latent, (21, 13)))


def test_validation_reports_psnr_at_1x_and_a_non_integer_scale(photo_dir):
    task = tiny_task(photo_dir)
    assert task.validation_images.shape == (3, 3, 16, 16)
    with torch.no_grad():
        metrics = task.validate(task.model.eval())
    assert set(metrics) == {"val_psnr", "val_psnr_1.5x_latent"}  # tiny: f = 2, so 1.5x of the 8x8 latent
    assert all(5 < value < 40 for value in metrics.values())


def test_gaussian_posterior_adds_a_kl_term(photo_dir):
    task = tiny_task(photo_dir, gaussian_posterior=True)
    batch = {k: torch.stack([task.dataset[i][k] for i in range(2)]) for k in ("image", "coord", "cell", "target")}
    loss, parts = task.loss(task.model, batch)
    assert set(parts) == {"loss_l1", "loss_kl"} and parts["loss_kl"] > 0
    assert loss.item() == pytest.approx(parts["loss_l1"] + 1e-6 * parts["loss_kl"], rel=1e-5)
    loss.backward()
    assert task.model.autoencoder.quant_conv.weight.grad.abs().sum() > 0


def test_objective_without_posterior_decodes_the_encoded_latent(photo_dir):
    task = tiny_task(photo_dir)
    images = task.validation_images[:2]
    coord = coord_grid((5, 7)).expand(2, -1, -1)
    with torch.no_grad():
        values, kl = ReconstructionObjective(task.model.autoencoder)(images, coord, cell_size((5, 7)))
        assert kl is None
        autoencoder = task.model.autoencoder
        assert torch.equal(values, autoencoder.decode_at(autoencoder.encode(images), coord, cell_size((5, 7))))


def cli(photo_dir, out, *options: str) -> list[str]:
    return ["train", "autoencoder", "--data", str(photo_dir), "--preset", "tiny", "--out", str(out), *options]


def test_cli_trains_and_saves(tmp_path, photo_dir, capsys):
    code = main(cli(photo_dir, tmp_path / "run", "--steps", "4", "--batch-size", "2", "--log-every", "2", "--num-queries", "20", "--ema", "0.5"))
    assert code == 0
    assert "saved the autoencoder" in capsys.readouterr().err
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4] and "val_psnr" in lines[-1]
    recorded = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert recorded["ema_decay"] == 0.5 and recorded["lr"] == get_preset("tiny").autoencoder_lr
    assert load_component(ImplicitAutoencoder, tmp_path / "run" / "model").config.base_channels == 16


def test_init_fine_tunes_a_saved_autoencoder_instead_of_a_fresh_one(tmp_path, photo_dir, tiny_models):
    start = load_component(ImplicitAutoencoder, tiny_models / "sr" / "autoencoder").state_dict()
    options = ("--steps", "1", "--batch-size", "2", "--lr", "1e-12", "--seed", "5", "--init", str(tiny_models / "sr" / "autoencoder"))
    assert main(cli(photo_dir, tmp_path / "run", *options)) == 0
    tuned = load_component(ImplicitAutoencoder, tmp_path / "run" / "model").state_dict()
    assert tuned.keys() == start.keys()
    assert all(torch.allclose(tuned[name], start[name], atol=1e-6) for name in start)  # one step at lr 1e-12 moves nothing


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--steps", "0"], "--steps"),
        (["--batch-size", "-2"], "--batch-size"),
        (["--lr", "0"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--ema", "1.5"], "--ema"),
        (["--num-queries", "0"], "--num-queries"),
        (["--workers", "-1"], "--workers"),
        (["--checkpoint-every", "0"], "--checkpoint-every"),
        (["--grad-clip", "-1"], "--grad-clip"),
    ],
)
def test_cli_rejects_bad_options_in_one_line(tmp_path, photo_dir, capsys, options, named):
    assert main(cli(photo_dir, tmp_path / "run", *options)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err
    assert not (tmp_path / "run").exists()


def test_cli_rejects_bad_data_and_presets(tmp_path, photo_dir, capsys):
    assert main(["train", "autoencoder", "--data", str(tmp_path / "none"), "--preset", "tiny", "--out", str(tmp_path / "run")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(cli(photo_dir, tmp_path / "run", "--preset", "huge")) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_cli_fine_tunes_the_decoder_alone_into_the_first_layer_head(tmp_path, photo_dir, capsys):
    """`train decoder`: the encoder (so every latent) stays bit-identical, the decoder moves (that it
    learns is tests/training/test_autoencoder_learning.py's)."""
    assert main(cli(photo_dir, tmp_path / "ae", "--steps", "4", "--batch-size", "2", "--num-queries", "20")) == 0
    options = ["--steps", "4", "--batch-size", "2", "--num-queries", "20"]
    code = main(
        [
            "train",
            "decoder",
            "--autoencoder",
            str(tmp_path / "ae" / "model"),
            "--head-blend",
            "first-layer",
            "--data",
            str(photo_dir),
            "--preset",
            "tiny",
            "--out",
            str(tmp_path / "dec"),
            *options,
        ]
    )
    assert code == 0 and "saved the fine-tuned autoencoder" in capsys.readouterr().err
    before = load_component(ImplicitAutoencoder, tmp_path / "ae" / "model").state_dict()
    after = load_component(ImplicitAutoencoder, tmp_path / "dec" / "model")
    assert after.config.head_blend == "first-layer"
    state = after.state_dict()
    frozen = [key for key in before if key.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(state[key], before[key]) for key in frozen)
    assert not torch.equal(state["head.feature_proj.weight"], before["head.feature_proj.weight"]) and state["head.phase_proj.weight"].any()


def test_cli_decoder_refuses_a_head_it_would_have_to_cut(tmp_path, photo_dir, capsys):
    from arbiscale.models.autoencoder import with_head_blend

    with_head_blend(ImplicitAutoencoder(**get_preset("tiny").autoencoder), "first-layer").save_pretrained(tmp_path / "blended")
    code = main(
        ["train", "decoder", "--autoencoder", str(tmp_path / "blended"), "--head-blend", "outputs", "--data", str(photo_dir), "--preset", "tiny", "--out", str(tmp_path / "dec")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "would drop trained weights" in err
