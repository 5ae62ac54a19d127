"""A saved model whose weights do not fit its config (edited config, foreign or damaged weights file): the CLI
names the keys that differ in one line and exits 2."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from arbiscale.models import ImplicitAutoencoder


@pytest.fixture
def model_copy(tmp_path, tiny_models):
    """A private copy of the tiny SR model folder, free to damage."""
    return shutil.copytree(tiny_models / "sr", tmp_path / "model")


@pytest.fixture
def source(tmp_path, real_photos):
    path = tmp_path / "photo.png"
    Image.fromarray(real_photos["astronaut"][200:216, 200:216]).save(path)
    return path


def weights_of(component_dir):
    (path,) = component_dir.glob("*.safetensors")
    return path


def test_a_config_of_another_size_names_every_mismatched_key(tmp_path, cli, model_copy, source):
    config_file = model_copy / "autoencoder" / "config.json"
    config = json.loads(config_file.read_text())
    config["latent_channels"] += 1
    config_file.write_text(json.dumps(config))
    on_disk = load_file(weights_of(model_copy / "autoencoder"))
    configured = ImplicitAutoencoder.from_config(config).state_dict()
    differing = sorted(name for name, tensor in on_disk.items() if tensor.shape != configured[name].shape)
    line = cli("upscale", source, "-o", tmp_path / "out", "-s", "2", "--model", model_copy).error_line()
    assert "wrong shape" in line and str(model_copy / "autoencoder") in line
    assert len(differing) > 5
    assert all(name in line for name in differing[:5]) and f"(+{len(differing) - 5} more)" in line  # five named, and how many besides
    assert "ignore_mismatched_sizes" not in line  # diffusers' advice to load anyway is not ours
    assert not (tmp_path / "out").exists()


def test_missing_and_unexpected_weights_are_named(tmp_path, cli, model_copy, source):
    path = weights_of(model_copy / "denoiser")
    weights = load_file(path)
    dropped = sorted(weights)[0]
    del weights[dropped]
    weights["adapter.weight"] = torch.zeros(2)
    save_file(weights, path)
    line = cli("upscale", source, "-o", tmp_path / "out", "-s", "2", "--model", model_copy).error_line()
    assert f"missing {dropped}" in line and "unexpected adapter.weight" in line


def test_a_truncated_weights_file_is_one_line(tmp_path, cli, model_copy, source):
    path = weights_of(model_copy / "denoiser")
    path.write_bytes(path.read_bytes()[:4096])
    line = cli("upscale", source, "-o", tmp_path / "out", "-s", "2", "--model", model_copy).error_line()
    assert str(model_copy / "denoiser") in line


def test_training_on_a_mismatched_autoencoder_is_refused(tmp_path, cli, model_copy, photo_dir):
    config_file = model_copy / "autoencoder" / "config.json"
    config = json.loads(config_file.read_text())
    config["base_channels"] *= 2
    config_file.write_text(json.dumps(config))
    argv = ["train", "ldm", "--task", "gen", "--autoencoder", model_copy / "autoencoder", "--data", photo_dir, "--preset", "tiny", "--out", tmp_path / "run"]
    line = cli(*argv).error_line()
    assert "wrong shape" in line and "encoder.conv_in.weight" in line
    assert not (tmp_path / "run").exists()


def test_damaged_bundled_weights_are_refused_at_load(tmp_path, monkeypatch):
    from arbiscale.errors import CheckpointMismatchError
    from arbiscale.pipelines import UpscalePipeline, base, bundled_model_dir

    copy = tmp_path / "sr"
    shutil.copytree(bundled_model_dir("sr"), copy)
    monkeypatch.setattr(base, "bundled_model_dir", lambda name: copy)
    assert UpscalePipeline.from_pretrained() is not None  # intact: loads
    weights = copy / "denoiser" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte deep in the weights: same size, still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointMismatchError, match="bundled model .* is damaged .*denoiser/diffusion_pytorch_model.safetensors does not match its checksum"):
        UpscalePipeline.from_pretrained()
