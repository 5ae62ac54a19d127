"""Offline checks of the vector-set builder on a small Iconify package built in the test: exact renders at
every size, the filters, square canvases, the fixed split, licences, reruns and one-line refusals."""

import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("resvg_py")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_vector_set.py"
_spec = importlib.util.spec_from_file_location("build_vector_set", SCRIPT)
bv = importlib.util.module_from_spec(_spec)
sys.modules["build_vector_set"] = bv
_spec.loader.exec_module(bv)

ICONS = {
    "prefix": "test",
    "width": 16,
    "height": 16,
    "icons": {
        "red-square": {"body": '<rect x="0" y="0" width="16" height="16" fill="#ff0000"/>'},
        "blue-dot-face": {"body": '<circle cx="8" cy="8" r="4" fill="#0000ff"/>'},
        "wide-bar": {"body": '<rect x="0" y="0" width="32" height="16" fill="#00ff00"/>', "width": 32},
        "hand-medium-tone": {"body": '<rect width="16" height="16" fill="#000"/>'},
        "secret": {"body": '<rect width="16" height="16" fill="#000"/>', "hidden": True},
    },
}


def write_package(path: Path, icons: dict = ICONS) -> Path:
    files = {
        "package/package.json": json.dumps({"name": "@iconify-json/test", "version": "1.0.0", "license": "MIT"}),
        "package/icons.json": json.dumps(icons),
        "package/info.json": json.dumps({"author": {"name": "Tester"}, "license": {"spdx": "MIT"}}),
        "package/LICENSE": "MIT licence text",
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def build(tmp_path, *extra):
    return bv.main(["--out", str(tmp_path / "out"), "--tarball", str(write_package(tmp_path / "set.tgz")), "--sizes", "8,32", *extra])


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_renders_every_icon_exactly_at_every_size_on_a_square_canvas(tmp_path):
    assert build(tmp_path) == 0
    out = tmp_path / "out"
    names = {p.stem for p in (out / "32").glob("*.png")}
    assert names == {"red-square", "blue-dot-face", "wide-bar"}  # no skin-tone variant, nothing hidden
    for size in (8, 32):
        red = pixels(out / str(size) / "red-square.png")
        assert red.shape == (size, size, 3) and (red == [255, 0, 0]).all()
    dot = pixels(out / "32" / "blue-dot-face.png")
    assert (dot[16, 16] == [0, 0, 255]).all() and (dot[0, 0] == [255, 255, 255]).all()  # flattened on white
    bar = pixels(out / "32" / "wide-bar.png")  # 2:1, centred: white above and below the green band
    assert (bar[16, 16] == [0, 255, 0]).all() and (bar[2, 16] == [255, 255, 255]).all() and (bar[29, 16] == [255, 255, 255]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["package"] == "@iconify-json/test" and manifest["licence"] == {"spdx": "MIT"} and manifest["author"]["name"] == "Tester"
    listed = {line for split in ("train", "val") for line in (out / "32" / f"{split}.txt").read_text().split()}
    assert listed == {f"{name}.png" for name in names}
    assert (out / "licences" / "LICENSE").read_text() == "MIT licence text"
    notice = (out / "NOTICE.md").read_text()
    assert "@iconify-json/test 1.0.0" in notice and "3 icons" in notice and "Tester" in notice and "MIT" in notice


def test_match_filter_split_is_fixed_by_name_and_reruns_write_the_same_bytes(tmp_path):
    assert build(tmp_path, "--match", "face") == 0
    out = tmp_path / "out"
    assert [p.name for p in (out / "8").glob("*.png")] == ["blue-dot-face.png"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert build(tmp_path, "--match", "face") == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert all(bv.split_of(name, 10.0) == bv.split_of(name, 10.0) for name in ICONS["icons"])
    assert sum(bv.split_of(f"icon-{i}", 10.0) == "val" for i in range(2000)) in range(150, 250)  # about 10 %


def test_refusals_are_one_line(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("a user's file")
    assert build(tmp_path) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "out" / "mine.txt").read_text() == "a user's file"
    assert bv.main(["--out", str(tmp_path / "o2"), "--tarball", str(tmp_path / "missing.tgz")]) == 2
    assert "Iconify" in capsys.readouterr().err
    assert bv.main(["--out", str(tmp_path / "o3"), "--tarball", str(write_package(tmp_path / "s.tgz")), "--match", "zebra"]) == 2
    assert "--match" in capsys.readouterr().err
    assert bv.main(["--out", str(tmp_path / "o4"), "--tarball", str(tmp_path / "s.tgz"), "--sizes", "0,8"]) == 2
    assert "--sizes" in capsys.readouterr().err
