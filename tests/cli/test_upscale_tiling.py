import argparse
import os

import numpy as np
import pytest
import torch
from PIL import Image

from arbiscale.cli.inference_options import device_and_dtype
from arbiscale.cli.main import main
from arbiscale.data.images import image_to_tensor, tensor_to_image
from arbiscale.models import ImplicitAutoencoder
from arbiscale.models.unet import LatentDenoiser
from arbiscale.pipelines import UpscalePipeline
from arbiscale.presets import get_preset
from arbiscale.sampling import make_scheduler

FAST = ["--steps", "2", "--no-progress", "--sampler", "ddim", "--eta", "0"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    preset = get_preset("tiny")
    denoiser = LatentDenoiser.from_preset(preset, "sr")
    denoiser.set_latent_scale(50.0)
    UpscalePipeline(ImplicitAutoencoder(**preset.autoencoder), denoiser, make_scheduler("ddpm")).save_pretrained(folder)
    return folder


@pytest.fixture
def photo(tmp_path, real_photos):
    path = tmp_path / "photo.png"
    Image.fromarray(real_photos["coffee"][100:124:1, 200:240]).save(path)
    return path


def test_tiled_upscale_writes_what_the_pipeline_makes(tmp_path, model_dir, photo):
    out = tmp_path / "tiled.png"
    options = ["--tile", "12", "--tile-overlap", "4", "--max-memory", "1GB"]
    assert main(["upscale", str(photo), "-o", str(out), "-s", "3", "--model", str(model_dir), *options, *FAST]) == 0
    assert Image.open(out).size == (120, 72)
    pipe = UpscalePipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_tiling(tile_size=12, tile_overlap=4, max_memory="1GB")
    result = pipe(
        image_to_tensor(Image.open(photo).convert("RGB")), scale=3, num_inference_steps=2, generator=[torch.Generator().manual_seed(0)]
    )  # the command line's sampling defaults are the pipeline's
    assert result.tiling.sample_tile == 12 and result.tiling.code_tile == 12
    expected = np.asarray(tensor_to_image(result.images[0])).astype(int)
    assert np.abs(np.asarray(Image.open(out)).astype(int) - expected).max() <= 1


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (["--tile", "0"], "--tile"),
        (["--tile", "7"], "multiple of 2"),
        (["--tile", "x"], "--tile"),
        (["--tile", "8", "--tile-overlap", "-1"], "--tile-overlap"),
        (["--tile", "8", "--tile-overlap", "8"], "overlap"),
        (["--max-memory", "lots"], "memory budget"),
        (["--max-memory", "1KB"], "--max-memory"),
    ],
)
def test_bad_tiling_values_exit_2_with_one_line(tmp_path, model_dir, photo, capsys, options, option):
    assert main(["upscale", str(photo), "-o", str(tmp_path / "out"), "-s", "2", "--model", str(model_dir), *options, *FAST]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in lines[0]


def test_threads_are_set_and_checked(tmp_path, model_dir, photo, capsys, monkeypatch):
    from arbiscale.cli.inference_options import idle_cores, process_state

    try:
        process_state(argparse.Namespace(device="cpu", dtype="auto", threads="2"))
        assert torch.get_num_threads() == 2
        process_state(argparse.Namespace(device="cpu", dtype="auto", threads="auto"))
        assert torch.get_num_threads() == 2  # auto keeps OMP_NUM_THREADS's choice when it is set (the suite sets it)
        monkeypatch.delenv("OMP_NUM_THREADS")
        process_state(argparse.Namespace(device="cpu", dtype="auto", threads="auto"))
        assert 1 <= torch.get_num_threads() <= len(os.sched_getaffinity(0))
        assert 1 <= idle_cores(0.05) <= len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(1)  # the suite's setting (conftest)
    assert main(["upscale", str(photo), "-o", str(tmp_path / "out"), "-s", "2", "--model", str(model_dir), "--threads", "0", *FAST]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--threads must be at least 1" in lines[0]


@pytest.mark.parametrize("native", [False, True])
def test_dtype_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, native):
    monkeypatch.setattr("arbiscale.precision.native_bf16", lambda device: native)
    args = argparse.Namespace(device="cpu", dtype="auto")
    assert device_and_dtype(args) == (torch.device("cpu"), torch.bfloat16 if native else torch.float32)
    assert device_and_dtype(argparse.Namespace(device="cpu", dtype="bf16"))[1] == torch.bfloat16
    assert device_and_dtype(argparse.Namespace(device="cpu", dtype="fp32"))[1] == torch.float32


@pytest.mark.parametrize("encoder_type", ["edsr-baseline", "rdn"])
def test_a_liif_model_upscales_in_encoder_tiles_to_the_same_image(tmp_path, encoder_type):
    """LIIF's own code runs its encoder on the whole input; here `--tile N` runs it in N x N windows with a
    halo of its receptive radius, so a large input fits in less memory and the output is unchanged."""
    from arbiscale.models.liif import LIIF

    torch.manual_seed(0)
    LIIF(channels=8, num_blocks=2, head_hidden=(16, 16), encoder_type=encoder_type, rdn_growth=4, rdn_convs=2).save_pretrained(tmp_path / "liif")
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((37, 50, 3)) * 255).astype(np.uint8)).save(photo)
    common = ["upscale", str(photo), "-s", "2.5", "--model", str(tmp_path / "liif"), "--no-progress"]
    assert main([*common, "-o", str(tmp_path / "whole")]) == 0
    assert main([*common, "--tile", "12", "-o", str(tmp_path / "tiled")]) == 0
    whole, tiled = (np.asarray(Image.open(tmp_path / name / "photo_x2.5.png")) for name in ("whole", "tiled"))
    assert whole.shape == (92, 125, 3) and np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
