"""Bundled models by name: `from_pretrained()` loads the default, `from_pretrained(NAME)` and `--model NAME`
the others; an existing folder of that name is the user's, and wins."""

from __future__ import annotations

import shutil

import pytest
import torch

from arbiscale.cli.main import main
from arbiscale.manifest import write_manifest
from arbiscale.pipelines import GenerationPipeline, UpscalePipeline, base, load_pipeline


@pytest.fixture
def bundled(tmp_path, tiny_models, monkeypatch):
    """A package whose weights/ holds the tiny models under every bundled folder name; the generator folders
    differ in one weight, so each load can be told apart."""
    package = tmp_path / "package"
    for pipeline_class, source in ((UpscalePipeline, "sr"), (GenerationPipeline, "gen")):
        for mark, folder in enumerate(pipeline_class.bundled_models.values()):
            target = package / "weights" / folder
            shutil.copytree(tiny_models / source, target)
            pipe = pipeline_class.from_pretrained(target)
            with torch.no_grad():
                pipe.denoiser.unet.conv_out.bias.fill_(float(mark))
            pipe.save_pretrained(target)
            write_manifest(target)
    monkeypatch.setattr(base.resources, "files", lambda name: package)
    return package


def mark_of(pipe) -> float:
    return float(pipe.denoiser.unet.conv_out.bias[0].detach())


def test_default_and_named_generators(bundled, tmp_path, monkeypatch):
    names = list(GenerationPipeline.bundled_models)
    assert names[0] == "emoji"
    assert mark_of(GenerationPipeline.from_pretrained()) == 0.0  # the first name is the default
    for mark, name in enumerate(names):
        assert mark_of(GenerationPipeline.from_pretrained(name)) == float(mark)
        assert isinstance(load_pipeline(name), GenerationPipeline)
    assert isinstance(load_pipeline(next(iter(UpscalePipeline.bundled_models))), UpscalePipeline)
    # A folder of the user's with a bundled name is the user's.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(bundled / "weights" / GenerationPipeline.bundled_models[names[1]], tmp_path / names[0])
    assert mark_of(GenerationPipeline.from_pretrained(names[0])) == 1.0


def test_generate_takes_a_bundled_name(bundled, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--model", "landscapes", "--size", "16x16", "--steps", "2", "-o", str(out), "--no-progress"]) == 0
    assert (out / "seed0_16x16.png").is_file()
    assert main(["generate", "--model", "emojis", "--size", "16x16", "-o", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "emojis" in err[-1]
