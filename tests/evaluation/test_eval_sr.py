import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from arbiscale.cli.main import main
from arbiscale.data.images import image_to_tensor
from arbiscale.metrics import metric_settings, quantize_8bit, resize, synthesize_lr
from arbiscale.models.liif import LIIF
from arbiscale.models.loading import load_component
from arbiscale.pipelines import UpscalePipeline
from arbiscale.pipelines.upscale import DEFAULT_SAMPLING

QUIET = ["--no-progress"]
# 60x76 photos: x2 keeps the whole image; x3.5 has LR sides floor(60/3.5) = 17, floor(76/3.5) = 21 and
# HR round(17 * 3.5) = 60 (59.5 rounds to even), round(21 * 3.5) = 74.
EXPECTED_SIZES = {"2": ((60, 76), (30, 38)), "3.5": ((60, 74), (17, 21))}


def results_of(folder):
    return json.loads((folder / "results.json").read_text())


def without_run_details(results):
    """The report without what differs between runs of one evaluation: date, processes, command and timings."""

    def timeless(value):
        if isinstance(value, dict):
            return {key: timeless(item) for key, item in value.items() if key != "seconds"}
        return value

    return {key: timeless(value) for key, value in results.items() if key not in ("date", "processes", "command")}


def one_error_line(capsys, text):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and text in err[0], err


def test_bicubic_report_matches_a_direct_metric_computation(tmp_path, eval_photos):
    out = tmp_path / "report"
    argv = [
        "eval",
        "sr",
        "--data",
        str(eval_photos),
        "--baseline",
        "bicubic",
        "--scales",
        "2,3.5",
        "--protocol",
        "liif-benchmark",
        "--resize",
        "pil",
        "--grid-images",
        "2",
        "--out",
        str(out),
        *QUIET,
    ]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid_x2.png", "grid_x3.5.png", "metric_vs_scale.png", "report.md", "results.json"]
    results = results_of(out)
    assert results["protocol"] == "liif-benchmark" and results["resize"] == "pil" and results["layout"] == "folder"
    assert results["num_images"] == 3 and results["models"] == [] and results["scales"] == [2.0, 3.5]
    assert "--resize pil" in results["command"] and results["date"]
    assert results["images"] == ["astronaut.png", "chelsea.png", "coffee.png"]
    for key, (hr_size, lr_size) in EXPECTED_SIZES.items():
        entry = results["results"][key]
        scale = float(key)
        assert entry["settings"] == metric_settings("liif-benchmark", scale, "pil").as_dict()
        assert entry["settings"]["channel"] == "y" and entry["settings"]["crop_border"] == math.ceil(scale)
        assert entry["lr_source"] == "synthesised (pil bicubic)"
        expected = []
        for name in results["images"]:
            hr = image_to_tensor(Image.open(eval_photos / name))[None][..., : hr_size[0], : hr_size[1]]
            sr = quantize_8bit(resize(synthesize_lr(hr, lr_size, "pil"), hr_size, "pil"))
            expected.append(metric_settings("liif-benchmark", scale, "pil").psnr(sr, hr).item())
        assert entry["per_image"]["bicubic"]["psnr"] == pytest.approx(expected, abs=1e-9)
        assert entry["methods"]["bicubic"]["psnr"] == pytest.approx(np.mean(expected), abs=1e-9)
        assert entry["methods"]["bicubic"]["lpips"].startswith("unavailable")
        assert 0 < entry["methods"]["bicubic"]["ssim"] < 1 and 0 < entry["methods"]["bicubic"]["lr_consistency"] < 1e-2
    assert results["results"]["2"]["methods"]["bicubic"]["psnr"] > results["results"]["3.5"]["methods"]["bicubic"]["psnr"]

    report = (out / "report.md").read_text()
    assert "## PSNR (dB)" in report and "| bicubic |" in report and "liif-benchmark" in report and "pil" in report
    assert f"{results['results']['2']['methods']['bicubic']['psnr']:.2f}" in report
    grid = Image.open(out / "grid_x3.5.png")
    assert grid.size[0] >= 3 * 74 and grid.size[1] >= 2 * 60  # LR | bicubic | GT columns, two image rows

    before = (out / "results.json").read_bytes()
    assert main(argv) == 2  # an existing report is kept
    assert (out / "results.json").read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0


def test_plot_is_skipped_without_matplotlib(tmp_path, eval_photos, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "sr",
                "--data",
                str(eval_photos),
                "--baseline",
                "bicubic",
                "--scales",
                "3",
                "--protocol",
                "paper",
                "--max-images",
                "1",
                "--grid-images",
                "0",
                "--out",
                str(out),
                *QUIET,
            ]
        )
        == 0
    )
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "results.json"]
    assert "metric_vs_scale.png" not in (out / "report.md").read_text()
    assert results_of(out)["num_images"] == 1


def test_model_with_several_samples(tmp_path, eval_photos, tiny_models):
    out = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "sr",
                "--model",
                str(tiny_models / "sr"),
                "--data",
                str(eval_photos),
                "--max-images",
                "2",
                "--scales",
                "2",
                "--protocol",
                "paper",
                "--baseline",
                "bicubic",
                "--samples",
                "2",
                "--steps",
                "2",
                "--seed",
                "5",
                "--grid-images",
                "1",
                "--out",
                str(out),
                *QUIET,
            ]
        )
        == 0
    )
    results = results_of(out)
    ours = results["results"]["2"]["methods"]["ours"]
    sampler = DEFAULT_SAMPLING["sampler"]  # eval sr samples with upscale's defaults, the pipeline's
    assert results["samples"] == 2 and results["sampler"] == sampler and results["steps"] == 2 and results["seed"] == 5
    assert results["eta"] == UpscalePipeline.resolve_eta(sampler, None)
    assert ours["diversity"] > 0 and "diversity" not in results["results"]["2"]["methods"]["bicubic"]
    assert math.isfinite(ours["psnr"]) and ours["lpips"].startswith("unavailable")
    assert results["strength"] == DEFAULT_SAMPLING["strength"] and results["lr_consistency"] is DEFAULT_SAMPLING["lr_consistency"]
    report = (out / "report.md").read_text()
    consistency = "on" if DEFAULT_SAMPLING["lr_consistency"] else "off"
    assert "| ours |" in report and f"strength {DEFAULT_SAMPLING['strength']}, LR consistency {consistency}" in report
    assert Image.open(out / "grid_x2.png").size[0] >= 4 * 76  # LR | bicubic | ours | GT


@pytest.mark.slow
def test_a_trained_liif_model_is_scored_once_per_input_without_sampling_settings(tmp_path, photo_dir, eval_photos, tiny_models, capsys):
    run = tmp_path / "liif"
    assert main(["train", "liif", "--data", str(photo_dir), "--preset", "tiny", "--out", str(run), "--steps", "4", "--batch-size", "4"]) == 0
    out = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "sr",
                "--model",
                str(run / "model"),
                "--data",
                str(eval_photos),
                "--baseline",
                "bicubic",
                "--scales",
                "2,3.5",
                "--protocol",
                "liif-benchmark",
                "--samples",
                "3",
                "--seed",
                "7",
                "--grid-images",
                "1",
                "--out",
                str(out),
                *QUIET,
            ]
        )
        == 0
    )
    results = results_of(out)
    assert results["model_classes"] == ["LIIF"] and results["samples"] == 1
    assert results["sampler"] is None and results["seed"] is None and results["lr_consistency"] is None
    liif = load_component(LIIF, run / "model")
    for key, (hr_size, lr_size) in EXPECTED_SIZES.items():
        entry = results["results"][key]
        assert list(entry["methods"]) == ["bicubic", "liif"] and "diversity" not in entry["methods"]["liif"]
        expected = []
        for name in results["images"]:
            hr = image_to_tensor(Image.open(eval_photos / name))[None][..., : hr_size[0], : hr_size[1]]
            with torch.no_grad():
                sr = quantize_8bit(liif.upscale(synthesize_lr(hr, lr_size, "matlab"), hr_size))
            expected.append(metric_settings("liif-benchmark", float(key), "matlab").psnr(sr, hr).item())
        assert entry["per_image"]["liif"]["psnr"] == pytest.approx(expected, abs=1e-9)
    report = (out / "report.md").read_text()
    assert "| liif |" in report and "LIIF is a deterministic regression model" in report
    assert f"{results['results']['3.5']['methods']['liif']['psnr']:.2f}" in report
    assert Image.open(out / "grid_x2.png").size[0] >= 4 * 76  # LR | bicubic | liif | GT

    # side by side: our pipeline and LIIF in one report, each scored as in its own run
    both = tmp_path / "both"
    assert (
        main(
            [
                "eval",
                "sr",
                "--model",
                str(tiny_models / "sr"),
                "--model",
                str(run / "model"),
                "--data",
                str(eval_photos),
                "--baseline",
                "bicubic",
                "--scales",
                "2,3.5",
                "--protocol",
                "liif-benchmark",
                "--samples",
                "2",
                "--steps",
                "1",
                "--seed",
                "7",
                "--grid-images",
                "1",
                "--out",
                str(both),
                *QUIET,
            ]
        )
        == 0
    )
    side_by_side = results_of(both)
    assert side_by_side["model_classes"] == ["UpscalePipeline", "LIIF"] and side_by_side["samples"] == 2 and side_by_side["seed"] == 7
    for key in EXPECTED_SIZES:
        methods = side_by_side["results"][key]["methods"]
        assert list(methods) == ["bicubic", "ours", "liif"] and methods["ours"]["diversity"] > 0
        assert side_by_side["results"][key]["per_image"]["liif"]["psnr"] == results["results"][key]["per_image"]["liif"]["psnr"]
    assert Image.open(both / "grid_x2.png").size[0] >= 5 * 76  # LR | bicubic | ours | liif | GT
    capsys.readouterr()
    assert (
        main(["eval", "sr", "--model", str(run / "model"), "--model", str(run / "model"), "--data", str(eval_photos), "--scales", "2", "--out", str(tmp_path / "twice"), *QUIET])
        == 2
    )
    one_error_line(capsys, "two models of kind 'liif'")


def test_user_errors_are_one_line(tmp_path, eval_photos, tiny_models, capsys):
    base = ["eval", "sr", "--data", str(eval_photos), "--out", str(tmp_path / "r"), *QUIET]
    cases = [
        ([*base, "--scales", "2", "--protocol", "paper"], "--baseline"),
        ([*base, "--scales", "2", "--protocol", "basicsr", "--baseline", "bicubic"], "--protocol"),
        ([*base, "--scales", "2,x", "--protocol", "paper", "--baseline", "bicubic"], "--scales"),
        ([*base, "--scales", "2", "--protocol", "paper", "--baseline", "lanczos"], "lanczos"),
        ([*base, "--scales", "2", "--protocol", "paper", "--baseline", "bicubic", "--lpips-alex", "a.pth"], "LPIPS"),
        ([*base, "--scales", "2", "--protocol", "paper", "--model", str(eval_photos)], "no model_index.json or config.json"),
        ([*base, "--scales", "2", "--protocol", "paper", "--model", str(tiny_models / "sr" / "autoencoder")], "a saved ImplicitAutoencoder"),
    ]
    for argv, text in cases:
        assert main(argv) == 2
        one_error_line(capsys, text)
    assert not (tmp_path / "r").exists()


def test_two_processes_gather_the_same_report(tmp_path, eval_photos, run_ranks):
    argv = [
        "eval",
        "sr",
        "--data",
        str(eval_photos),
        "--baseline",
        "bicubic",
        "--baseline",
        "nearest",
        "--scales",
        "2,3.5",
        "--protocol",
        "liif-div2k",
        "--grid-images",
        "3",
        *QUIET,
    ]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    run_ranks(*argv, "--out", tmp_path / "two", cwd=tmp_path)
    one, two = results_of(tmp_path / "one"), results_of(tmp_path / "two")
    assert one["processes"] == 1 and two["processes"] == 2
    assert without_run_details(one) == without_run_details(two)
    assert two["command"] == one["command"].replace(str(tmp_path / "one"), str(tmp_path / "two"))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    for name in ("grid_x2.png", "grid_x3.5.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / name)), np.asarray(Image.open(tmp_path / "two" / name)))
