"""One message, two audiences: the library names its parameters, the command line its flags."""

import pytest

from arbiscale.cli.flags import as_flags
from arbiscale.errors import UserError
from arbiscale.training.loop import TrainSettings, train


def test_parameters_become_flags():
    assert as_flags("raise `max_memory` or lower `tile_size`") == "raise --max-memory or lower --tile"
    assert as_flags("choose another `out_dir`; pass `allow_changes`") == "choose another --out; pass --allow-changes"
    assert as_flags("`arbiscale upscale` needs a model") == "`arbiscale upscale` needs a model"  # not a parameter


def test_a_python_caller_is_told_the_parameter_and_the_command_line_the_flag(tmp_path, photo_dir, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "something").write_text("the user's")
    with pytest.raises(UserError, match="pass `resume` to continue that run, or choose a new `out_dir`"):
        train(None, TrainSettings(out_dir=tmp_path / "run", steps=1, batch_size=1, lr=1e-3))
    from arbiscale.cli.main import main

    argv = ["train", "autoencoder", "--data", str(photo_dir), "--preset", "tiny", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "pass --resume to continue that run, or choose a new --out" in capsys.readouterr().err
