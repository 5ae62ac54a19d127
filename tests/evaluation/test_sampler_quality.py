"""Smoke test of benchmarks/sampler_quality.py on the tiny random model: its numbers are `arbiscale eval sr`'s."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from arbiscale.cli.main import main as cli

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as when the script runs: it imports a helper of a sibling benchmark
    spec = importlib.util.spec_from_file_location("sampler_quality", BENCHMARKS / "sampler_quality.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "sampler_quality", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_settings_are_scored_as_eval_sr_scores_them(tmp_path, tiny_models, eval_photos, benchmark, capsys):
    common = ["--model", str(tiny_models / "sr"), "--data", str(eval_photos), "--max-images", "2", "--protocol", "liif-benchmark"]
    out = tmp_path / "bench"
    argv = [*common, "--scales", "2", "3.5", "--settings", "ddim:2:1", "dpm-solver++:2", "unipc:3", "ddim:3", "--threads", "1", "--out", str(out)]
    assert benchmark.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"] == ["ddim-2 (eta 1)", "dpm-solver++-2", "unipc-3", "ddim-3 (eta 1)"]
    assert results["completed_images"] == 2 and results["images"] == ["astronaut.png", "chelsea.png"]
    report = (out / "report.md").read_text()
    assert "## x3.5" in report and "| dpm-solver++-2 |" in report and "| bicubic |" in report and "Suggested" in report
    assert (out / "psnr_vs_steps.png").stat().st_size > 0
    assert "| unipc-3 |" in capsys.readouterr().out

    reference = tmp_path / "eval"
    assert (
        cli(
            [
                "eval",
                "sr",
                *common,
                "--scales",
                "2,3.5",
                "--sampler",
                "dpm-solver++",
                "--steps",
                "2",
                "--baseline",
                "bicubic",
                "--grid-images",
                "0",
                "--no-progress",
                "--out",
                str(reference),
            ]
        )
        == 0
    )
    expected = json.loads((reference / "results.json").read_text())["results"]
    for key in ("2", "3.5"):
        entry = results["results"][key]
        rows = {row["label"]: row for row in entry["samplers"]}
        assert rows["dpm-solver++-2"]["per_image"]["psnr"] == pytest.approx(expected[key]["per_image"]["ours"]["psnr"], abs=1e-9)
        assert rows["dpm-solver++-2"]["ssim"] == pytest.approx(expected[key]["methods"]["ours"]["ssim"], abs=1e-9)
        assert entry["bicubic"]["psnr"] == pytest.approx(expected[key]["methods"]["bicubic"]["psnr"], abs=1e-9)
        assert all(row["seconds"] > 0 and len(row["per_image"]["seconds"]) == 2 for row in rows.values())
        assert rows[entry["samplers"][0]["label"]]["eta"] == 1.0 and rows["dpm-solver++-2"]["eta"] is None
        assert entry["suggested"] in rows and any(row["front"] for row in rows.values())

    with pytest.raises(benchmark.UserError, match="already exists"):
        benchmark.main(argv)


def test_setting_syntax(benchmark):
    assert benchmark.Setting.parse("ddim:200:1") == benchmark.Setting("ddim", 200, 1.0)
    assert benchmark.Setting.parse("ddim:50") == benchmark.Setting("ddim", 50, 1.0)  # the CLI's default eta
    assert benchmark.Setting.parse("unipc:20") == benchmark.Setting("unipc", 20, None)
    for bad, message in (("unipc", "no step count"), ("heun:20", "unknown"), ("unipc:20:0", "eta"), ("ddim:0", "at least 1")):
        with pytest.raises(benchmark.UserError, match=message):
            benchmark.Setting.parse(bad)
