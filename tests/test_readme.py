"""README's promises, run as printed: the Python snippet upscales a bundled photo with the bundled model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.slow
def test_readme_python_snippet_runs_as_printed(tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__readme__"})
    written = sorted(path for path in tmp_path.glob("*.png"))
    assert written, "the snippet saved no image"
    source = Image.open(tmp_path / "examples" / "coffee.png")
    result = Image.open(written[0])
    assert result.size == (source.width * 4, round(source.height * 4))
