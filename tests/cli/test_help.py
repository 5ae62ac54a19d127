"""`--help` answers without loading the model stack: the parsers read only `arbiscale.choices` and
the presets, so no command's help imports torch (or diffusers, accelerate, PIL, numpy)."""

import subprocess
import sys

from arbiscale import choices
from arbiscale.choices import OBJECTIVE_NAMES, SAMPLER_NAMES
from arbiscale.sampling.schedulers import OBJECTIVES, SAMPLERS

COMMANDS = [[], ["upscale"], ["generate"], ["eval", "sr"], ["eval", "gen"]] + [["train", stage] for stage in ("autoencoder", "decoder", "ldm", "align", "liif")]

PROBE = """
import sys
from arbiscale.cli.main import main
for words in {commands!r}:
    assert main(words + ["--help"]) == 0, words
heavy = sorted(name for name in ("torch", "diffusers", "accelerate", "PIL", "numpy") if name in sys.modules)
print(",".join(heavy) or "none")
"""


def test_every_help_answers_without_importing_torch():
    done = subprocess.run([sys.executable, "-c", PROBE.format(commands=COMMANDS)], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "none"
    assert "upscale" in done.stdout and "--head-blend" in done.stdout and "--protocol" in done.stdout


def test_choices_name_what_the_library_implements():
    assert tuple(SAMPLERS) == SAMPLER_NAMES and tuple(OBJECTIVES) == OBJECTIVE_NAMES
    from arbiscale.pipelines.upscale import DEFAULT_SAMPLING, UpscalePipeline

    assert DEFAULT_SAMPLING is choices.DEFAULT_SAMPLING and DEFAULT_SAMPLING["sampler"] in SAMPLER_NAMES
    assert UpscalePipeline.default_ddim_eta == choices.DEFAULT_DDIM_ETA
