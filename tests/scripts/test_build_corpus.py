"""Offline checks of the corpus builder: re-encoding, the split files, reruns, and the committed split."""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arbiscale.errors import UserError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_corpus.py"
_spec = importlib.util.spec_from_file_location("build_corpus", SCRIPT)
bc = importlib.util.module_from_spec(_spec)
sys.modules["build_corpus"] = bc  # dataclasses look their module up there
_spec.loader.exec_module(bc)


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour ramps plus noise: enough structure that a wrong resize or crop changes the pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture()
def sources(tmp_path: Path) -> tuple[dict, bc.Spec]:
    pkg, lib = tmp_path / "pkg", tmp_path / "lib"
    (pkg / "usr" / "img").mkdir(parents=True)
    lib.mkdir()
    Image.fromarray(_photo(300, 500, 0)).save(pkg / "usr/img/wide.jpg", quality=98)
    Image.fromarray(_photo(400, 100, 1)[..., 0]).save(pkg / "usr/img/gray.png")
    rgba = np.concatenate([_photo(90, 120, 2), np.full((90, 120, 1), 200, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(pkg / "usr/img/alpha.png")
    Image.fromarray(_photo(80, 50, 3)).save(lib / "small.png")
    entries = [
        bc.Entry("pkg", "usr/img/wide.jpg", "wide", "train", "CC0-1.0", "A"),
        bc.Entry("pkg", "usr/img/gray.png", "gray", "train", "GPL-2+", "B", crop=(0, 100, 100, 300)),
        bc.Entry("pkg", "usr/img/alpha.png", "alpha", "train", "GPL-2+", "C"),
        bc.Entry("lib", "small.png", "small", "val", "CC0-1.0", "D"),
    ]
    roots = {"pkg": bc.SourceRoot(pkg, "1.0-1"), "lib": bc.SourceRoot(lib, "2.0")}
    return roots, bc.Spec({"train": "jpg", "val": "png"}, entries)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_target_size_keeps_aspect_and_never_enlarges() -> None:
    assert bc.target_size(3000, 6000, 1024) == (512, 1024)
    assert bc.target_size(3837, 2560, 1024) == (1024, 683)
    assert bc.target_size(300, 451, 1024) == (300, 451)


def test_corpus_files_split_and_manifest(sources, tmp_path: Path) -> None:
    roots, spec = sources
    out = tmp_path / "corpus"
    manifest = bc.write_corpus(spec, roots, out, max_side=128)

    assert (out / "train.txt").read_text().split() == ["pkg__alpha.jpg", "pkg__gray.jpg", "pkg__wide.jpg"]
    assert (out / "val.txt").read_text().split() == ["lib__small.png"]
    assert manifest["counts"] == {"train": 3, "val": 1}
    assert json.loads((out / "manifest.json").read_text()) == manifest
    expected_hw = {"pkg__wide.jpg": (77, 128), "pkg__gray.jpg": (128, 64), "pkg__alpha.jpg": (90, 120), "lib__small.png": (80, 50)}
    for record in manifest["files"]:
        path = out / record["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
        with Image.open(path) as image:
            assert image.mode == "RGB"
            assert image.format == ("PNG" if record["split"] == "val" else "JPEG")
            assert (image.height, image.width) == expected_hw[record["file"]] == tuple(record["size_hw"])
    gray = next(r for r in manifest["files"] if r["file"] == "pkg__gray.jpg")
    assert gray["original_size_hw"] == [400, 100] and gray["crop_ltrb"] == [0, 100, 100, 300]
    # The training photos' attribution (it ships with the weights), grouped by package, licence and author.
    notice = (out / "NOTICE.md").read_text()
    assert "Trained on 3 photos" in notice and "## pkg 1.0-1" in notice
    assert "- A, CC0-1.0: usr/img/wide.jpg" in notice and "- B, GPL-2+: usr/img/gray.png" in notice and "- C, GPL-2+: usr/img/alpha.png" in notice
    assert "small.png" not in notice and "## lib" not in notice  # validation photos are not trained on
    # A validation photo that needs no resize keeps its exact pixels (PNG is lossless).
    with Image.open(out / "lib__small.png") as image:
        np.testing.assert_array_equal(np.asarray(image), _photo(80, 50, 3))


def test_rerun_is_byte_identical_and_drops_only_its_own_stale_files(sources, tmp_path: Path) -> None:
    roots, spec = sources
    out = tmp_path / "corpus"
    bc.write_corpus(spec, roots, out, max_side=128)
    before = _snapshot(out)
    bc.write_corpus(spec, roots, out, max_side=128)
    assert _snapshot(out) == before

    (out / "notes.txt").write_text("mine")
    smaller = bc.Spec(spec.formats, [e for e in spec.entries if e.name != "alpha"])
    bc.write_corpus(smaller, roots, out, max_side=128)
    assert not (out / "pkg__alpha.jpg").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert "pkg__alpha.jpg" not in (out / "train.txt").read_text()


def test_refuses_foreign_folder_missing_photo_and_tiny_side(sources, tmp_path: Path) -> None:
    roots, spec = sources
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(UserError, match="not empty"):
        bc.write_corpus(spec, roots, foreign, max_side=128)
    assert (foreign / "holiday.jpg").read_bytes() == b"not ours"

    broken = bc.Spec(spec.formats, spec.entries + [bc.Entry("lib", "gone.png", "gone", "val", "x", "y")])
    with pytest.raises(UserError, match="missing from their sources"):
        bc.write_corpus(broken, roots, tmp_path / "new", max_side=128)
    with pytest.raises(UserError, match="too small"):
        bc.write_corpus(spec, roots, tmp_path / "new2", max_side=8)


def test_committed_split_keeps_classic_test_photos_for_validation() -> None:
    spec = bc.load_spec()
    val = [e for e in spec.entries if e.split == "val"]
    train = [e for e in spec.entries if e.split == "train"]
    assert 15 <= len(val) <= 25 and len(train) >= 50
    assert {e.source for e in val} == {"opencv-doc", "scikit-image", "scikit-learn"}
    assert not {e.source for e in train} & {"opencv-doc", "scikit-image", "scikit-learn"}
    assert all(e.licence and e.author for e in spec.entries)
