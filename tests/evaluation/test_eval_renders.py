"""`arbiscale eval renders`: the decoder, its own small render resized, and bicubic from the exact input,
each scored against exact renders at every larger side; reports and one-line refusals."""

from __future__ import annotations

import json

import torch

from arbiscale.cli.main import main
from arbiscale.data.crops import load_uint8, uint8_to_float
from arbiscale.data.images import resize
from arbiscale.metrics import psnr, quantize_8bit
from arbiscale.pipelines import GenerationPipeline


def test_scores_every_larger_side_against_the_exact_render(tmp_path, tiny_models, make_render_set):
    root = make_render_set(tmp_path / "set", (8, 16, 32, 64))  # the tiny preset: 8x8 latent, f = 2, 16 px inputs
    (root / "16" / "val.txt").write_text("face.png\nflag.png\n")
    out = tmp_path / "report"
    assert main(["eval", "renders", "--model", str(tiny_models / "gen"), "--renders", str(root), "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "psnr_vs_scale.png", "report.md", "results.json"]
    data = json.loads((out / "results.json").read_text())
    assert data["input_side"] == 16 and data["num_images"] == 2 and sorted(data["results"]) == ["32", "64"]

    autoencoder = GenerationPipeline.from_pretrained(tiny_models / "gen").autoencoder
    image = uint8_to_float(load_uint8(root / "16" / "flag.png"))[None]
    exact = uint8_to_float(load_uint8(root / "64" / "flag.png"))[None]
    with torch.no_grad():
        decoded = quantize_8bit(autoencoder.decode(autoencoder.encode(image), (64, 64)).clamp(-1, 1))
    scores = data["results"]["64"]
    assert abs(scores["decoder"]["per_image_psnr"][1] - psnr(decoded, exact).item()) < 1e-4
    bicubic = psnr(quantize_8bit(resize(image, (64, 64)).clamp(-1, 1)), exact).item()
    assert abs(scores["bicubic"]["per_image_psnr"][1] - bicubic) < 1e-4
    assert "| 64 | 4 |" in (out / "report.md").read_text()


def test_missing_renders_and_split_are_one_line_errors(tmp_path, tiny_models, make_render_set, capsys):
    root = make_render_set(tmp_path / "set", (16, 32))
    (root / "16" / "val.txt").write_text("face.png\nnope.png\n")
    argv = ["eval", "renders", "--model", str(tiny_models / "gen"), "--renders", str(root), "--out", str(tmp_path / "r")]
    for extra, text in ((), "nope.png is missing"), (["--input-side", "32"], "needs a 32/ folder"), (["--split", str(tmp_path)], "cannot read"):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err
