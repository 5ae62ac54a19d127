"""The package's layers, drawn from its imports: every import looks down, so there is no circle.

A unit is a top-level module (errors.py) or sub-package (models/). Each unit imports only units of
lower layers; imports inside a unit are its own business.
"""

from __future__ import annotations

import ast
from pathlib import Path

import arbiscale

ROOT = Path(arbiscale.__file__).parent
# Lowest first.
LAYERS = [
    {"errors", "choices"},
    {"geometry", "files", "precision", "presets", "metrics"},
    {"manifest", "data", "sampling", "models"},
    {"pipelines"},
    {"baselines"},
    {"training", "evaluation", "web"},
    {"cli"},
]
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def imported_units(path: Path) -> set[str]:
    """The units a module imports relatively (the package imports itself only that way)."""
    package = list(path.relative_to(ROOT).parent.parts)
    units = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            units.add(target[0] if target else node.names[0].name)
    return units


def test_every_import_looks_down_the_layers():
    sources = [path for path in ROOT.rglob("*.py") if path.parent != ROOT or path.name != "__init__.py"]
    assert len(sources) > 50
    upward = []
    for path in sources:
        unit = path.relative_to(ROOT).parts[0].removesuffix(".py")
        assert unit in LAYER_OF, f"{unit} is in no layer: add it to LAYERS"
        for target in imported_units(path) - {unit, "__version__"}:
            assert target in LAYER_OF, f"{path.relative_to(ROOT)} imports {target}, which is in no layer"
            if LAYER_OF[target] >= LAYER_OF[unit]:
                upward.append(f"{path.relative_to(ROOT)} ({unit}) imports {target}")
    assert not upward, upward
