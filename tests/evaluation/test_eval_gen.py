import json
import math

import pytest
import torch
from PIL import Image

from arbiscale.cli.main import main
from arbiscale.data.images import save_image, tensor_to_image
from arbiscale.metrics import quantize_8bit, self_ssim
from arbiscale.pipelines import GenerationPipeline

SIZES = [(16, 16), (24, 24), (28, 20)]  # (H, W) of --sizes 16x16,24x24,20x28
RUN = ["--sizes", "16x16,24x24,20x28", "--num", "3", "--batch-size", "2", "--steps", "2", "--seed", "7", "--no-progress"]


class ColourStatistics(torch.nn.Module):
    """A real (if weak) image-to-features network: per-channel mean and std of the uint8 pixels."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float() / 255
        return torch.cat([pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))], dim=1)


def test_self_ssim_matrix_and_unavailable_fid(tmp_path, tiny_models):
    out = tmp_path / "report"
    assert main(["eval", "gen", "--model", str(tiny_models / "gen"), *RUN, "--grid-images", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "results.json", "samples.png", "self_ssim.png"]
    results = json.loads((out / "results.json").read_text())
    matrix = torch.tensor(results["self_ssim"]["matrix"], dtype=torch.float64)
    assert results["self_ssim"]["sizes"] == ["16x16", "24x24", "20x28"] and matrix.shape == (3, 3)
    assert torch.allclose(matrix.diagonal(), torch.ones(3, dtype=torch.float64))
    assert (matrix < 1).sum() == 6 and (matrix > -1).all()
    assert results["distribution"].startswith("unavailable")
    assert results["seed"] == 7 and results["steps"] == 2 and results["num_images"] == 3

    # The matrix is the mean over images sampled with seeds 7, 8, 9, however they were batched.
    pipe = GenerationPipeline.from_pretrained(tiny_models / "gen")
    pipe.set_progress_bar_config(disable=True)
    renders = pipe(SIZES, num_images=3, num_inference_steps=2, generator=[torch.Generator().manual_seed(s) for s in (7, 8, 9)]).images
    expected = self_ssim([quantize_8bit(r) for r in renders]).mean(dim=0)
    assert torch.allclose(matrix, expected, atol=1e-9)

    report = (out / "report.md").read_text()
    assert "## SelfSSIM" in report and "| 20x28 |" in report and "1.0000" in report and "unavailable" in report
    assert Image.open(out / "samples.png").size[0] >= 16 + 24 + 20


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_fid_precision_recall_with_a_feature_extractor(tmp_path, tiny_models, eval_photos):
    extractor = tmp_path / "extractor.pt"  # TorchScript, like NVIDIA's Inception file
    torch.jit.script(ColourStatistics()).save(str(extractor))
    out = tmp_path / "report"
    assert main(["eval", "gen", "--model", str(tiny_models / "gen"), *RUN, "--grid-images", "0", "--ref", str(eval_photos), "--inception", str(extractor), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["num_reference"] == 3
    for label in ("16x16", "24x24", "20x28"):
        scores = results["distribution"][label]
        assert math.isfinite(scores["fid"]) and scores["fid"] > 0
        assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1 and scores["pr_k"] == 2
    assert "| 16x16 |" in (out / "report.md").read_text().split("## FID")[1]
    assert not (out / "samples.png").exists()


@pytest.mark.parametrize(
    ("extra", "text"), [(["--inception", "x.pt"], "--ref"), (["--measure", "psnr"], "--measure"), (["--sizes", "16x16,abc"], "--sizes"), (["--measure", "ms-ssim"], "176")]
)
def test_gen_user_errors(tmp_path, tiny_models, capsys, extra, text):
    argv = ["eval", "gen", "--model", str(tiny_models / "gen"), *RUN, "--out", str(tmp_path / "r"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0]


def test_nearest_training_image_is_found_and_shown(tmp_path, tiny_models):
    """A training folder holding one of the samples themselves: that file is its nearest, at a PSNR no new
    picture reaches; the others are farther."""
    pipe = GenerationPipeline.from_pretrained(tiny_models / "gen")
    pipe.set_progress_bar_config(disable=True)
    sample = pipe([(64, 64)], num_images=1, num_inference_steps=2, generator=[torch.Generator().manual_seed(8)]).images[0]
    training = tmp_path / "training"
    training.mkdir()
    save_image(tensor_to_image(sample[0]), training / "copy.png")
    for i in range(3):
        Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy()).save(training / f"noise{i}.png")
    out = tmp_path / "report"
    argv = [
        "eval",
        "gen",
        "--model",
        str(tiny_models / "gen"),
        "--sizes",
        "16x16,64x64",
        "--num",
        "3",
        "--steps",
        "2",
        "--seed",
        "7",
        "--no-progress",
        "--grid-images",
        "3",
        "--neighbours",
        str(training),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    neighbours = json.loads((out / "results.json").read_text())["nearest_neighbours"]
    assert neighbours["path"][1].endswith("copy.png") and neighbours["psnr"][1] > 40
    assert max(neighbours["psnr"][0], neighbours["psnr"][2]) < neighbours["psnr"][1]
    assert Image.open(out / "samples.png").size[0] >= 16 + 64 + 64  # a column for the neighbours
    assert "## Nearest training images" in (out / "report.md").read_text()


def test_distances_on_the_models_own_encoder_are_named_apart_from_fid(tmp_path, tiny_models, eval_photos):
    out = tmp_path / "report"
    assert main(["eval", "gen", "--model", str(tiny_models / "gen"), *RUN, "--grid-images", "0", "--ref", str(eval_photos), "--encoder-features", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["distance_names"] == ["FD-encoder", "KD-encoder"] and "encoder" in results["features"]
    assert all(math.isfinite(results["distribution"][label]["fid"]) for label in ("16x16", "24x24", "20x28"))
    report = (out / "report.md").read_text()
    assert "## FD-encoder / KD-encoder" in report and "FID" not in report
