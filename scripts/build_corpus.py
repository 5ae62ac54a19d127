"""Build arbiscale's offline photo corpus: real photos from Debian packages, scikit-image and scikit-learn.

No dataset host is reachable from where the default model is trained, so the corpus is assembled from
photos that ship inside Debian packages and Python wheels. The photo list and the train / val split are
fixed in ``scripts/corpus_split.json`` (see docs/CORPUS.md); this script only fetches, re-encodes and
records them, so every run with the same inputs writes byte-identical files.

    python scripts/build_corpus.py --out /work/corpus [--max-side 1024] [--workdir /tmp/corpus-work]

Debian packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``; nothing is
installed. Pass ``--workdir`` to keep the downloads for the next run (or to supply the .deb files by hand
on a machine without apt).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

from arbiscale.errors import UserError

SPEC_PATH = Path(__file__).with_name("corpus_split.json")
PYTHON_SOURCES = {"scikit-image": "skimage/data", "scikit-learn": "sklearn/datasets/images"}
JPEG_QUALITY = 95
NOTICE = "NOTICE.md"  # the training photos' attribution, copied beside the weights of models trained on them
MIN_MAX_SIDE = 64


@dataclass(frozen=True)
class Entry:
    """One photo of the corpus, as fixed by the split definition."""

    source: str
    path: str
    name: str
    split: str
    licence: str
    author: str
    crop: tuple[int, int, int, int] | None = None

    def output_name(self, formats: dict[str, str]) -> str:
        return f"{self.source}__{self.name}.{formats[self.split]}"


@dataclass(frozen=True)
class Spec:
    formats: dict[str, str]
    entries: list[Entry]


@dataclass(frozen=True)
class SourceRoot:
    """Where a source's files were unpacked, and the version they came from (recorded in the manifest)."""

    root: Path
    version: str
    licence_files: tuple[Path, ...] = ()


def load_spec(path: Path = SPEC_PATH) -> Spec:
    """Read the split definition; it is the single place where photos and splits are chosen."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    formats = raw["formats"]
    if set(formats) != {"train", "val"} or not set(formats.values()) <= {"jpg", "png"}:
        raise UserError(f"{path}: 'formats' must map train and val to jpg or png; fix the split file")
    entries = []
    for item in raw["images"]:
        crop = item.get("crop")
        entries.append(Entry(item["source"], item["path"], item["name"], item["split"], item["licence"], item["author"], tuple(crop) if crop else None))
    names = [e.output_name(formats) for e in entries]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: two photos map to the same output file; give them distinct names")
    bad = [e.name for e in entries if e.split not in formats]
    if bad:
        raise UserError(f"{path}: photos {bad} have a split other than train or val; fix the split file")
    return Spec(formats, entries)


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def fetch_debs(packages: list[str], deb_dir: Path, apt_update: bool, hint: str) -> dict[str, Path]:
    """Download each package once; a .deb already in deb_dir is reused, which also allows offline runs.

    hint says where a user can put .deb files by hand, for the error messages.
    """
    deb_dir.mkdir(parents=True, exist_ok=True)
    found = {p: sorted(deb_dir.glob(f"{p}_*.deb")) for p in packages}
    several = [p for p, files in found.items() if len(files) > 1]
    if several:
        raise UserError(f"several .deb files for {', '.join(several)} in {deb_dir}; delete the stale ones and rerun")
    missing = [p for p, files in found.items() if not files]
    if missing:
        if shutil.which("apt-get") is None:
            raise UserError(f"apt-get not found, so {', '.join(missing)} cannot be downloaded; run this on Debian/Ubuntu or {hint}")
        if apt_update:
            done = _run(["apt-get", "update"])
            if done.returncode != 0:
                raise UserError(f"apt-get update failed ({_last_error(done.stderr)}); check that a Debian mirror is reachable and that you are root")
        for package in tqdm(missing, desc="apt-get download", unit="pkg"):
            done = _run(["apt-get", "download", package], cwd=deb_dir)
            if done.returncode != 0:
                raise UserError(
                    f"apt-get could not download {package} ({_last_error(done.stderr)}); check that a "
                    f"Debian mirror is reachable and the package lists are current (pass --apt-update "
                    f"as root), or {hint}"
                )
        found = {p: sorted(deb_dir.glob(f"{p}_*.deb")) for p in packages}
    return {p: files[0] for p, files in found.items()}


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip().startswith("E:")]
    lines = lines or [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def extract_debs(debs: dict[str, Path], extract_dir: Path) -> dict[str, SourceRoot]:
    """Unpack each .deb (without installing it); an unpacking finished before is reused."""
    roots = {}
    for package, deb in tqdm(sorted(debs.items()), desc="dpkg-deb -x", unit="pkg"):
        version = _run(["dpkg-deb", "-f", str(deb), "Version"])
        if version.returncode != 0:
            raise UserError(f"{deb} is not a readable .deb ({_last_error(version.stderr)}); delete it and rerun")
        target = extract_dir / deb.stem
        if not (target / ".extracted").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            done = _run(["dpkg-deb", "-x", str(deb), str(target)])
            if done.returncode != 0:
                raise UserError(f"dpkg-deb could not unpack {deb} into {target} ({_last_error(done.stderr)}); check the disk space there, or delete the .deb and rerun")
            (target / ".extracted").touch()
        roots[package] = SourceRoot(target, version.stdout.strip(), (target / "usr" / "share" / "doc" / package / "copyright",))
    return roots


def python_roots(sources: set[str]) -> dict[str, SourceRoot]:
    """Locate the photos bundled in the scikit-image and scikit-learn wheels."""
    roots = {}
    for source in sorted(sources):
        try:
            dist = importlib.metadata.distribution(source)
        except importlib.metadata.PackageNotFoundError:
            raise UserError(f"{source} is not installed; run `pip install {source}` and rerun") from None
        root = Path(dist.locate_file(PYTHON_SOURCES[source]))
        licence_files = (root / "README.txt",) if source == "scikit-learn" else ()
        roots[source] = SourceRoot(root, dist.version, licence_files)
    return roots


def target_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(H, W) with the long side at most max_side and the aspect ratio kept; never enlarges."""
    long_side = max(height, width)
    if long_side <= max_side:
        return height, width
    scale = max_side / long_side
    return max(1, round(height * scale)), max(1, round(width * scale))


def reencode(src: Path, max_side: int, fmt: str, crop: tuple[int, int, int, int] | None = None) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """Decode, orient, crop, shrink (Lanczos) and encode one photo as sRGB RGB.

    Returns the encoded bytes, the original (H, W) and the output (H, W). Alpha is dropped (the only
    photo with alpha has a partly transparent one-pixel border); embedded ICC profiles are all sRGB
    variants here, so pixels are kept and the profile is not copied.
    """
    with Image.open(src) as opened:
        original = (opened.height, opened.width)
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if crop is not None:
        image = image.crop(crop)
    height, width = target_size(image.height, image.width, max_side)
    if (height, width) != (image.height, image.width):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "jpg":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    else:
        image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue(), original, (height, width)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write only when the bytes differ, so reruns leave files (and their mtimes) untouched."""
    if path.exists() and path.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_out_dir(out: Path) -> dict | None:
    """Refuse to write into a non-empty folder this script did not make; return its old manifest if any."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    manifest = out / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text(encoding="utf-8"))
    if any(out.iterdir()):
        raise UserError(f"--out {out} is not empty and holds no corpus manifest.json; give a new or empty folder")
    return None


def check_output(out: Path, max_side: int) -> dict | None:
    """Validate the options before any download; return the manifest of an earlier corpus in out, if any."""
    if max_side < MIN_MAX_SIDE:
        raise UserError(f"--max-side {max_side} is too small; give at least {MIN_MAX_SIDE}")
    return _check_out_dir(out)


def write_corpus(spec: Spec, roots: dict[str, SourceRoot], out: Path, max_side: int) -> dict:
    """Re-encode every photo into out and write train.txt, val.txt and manifest.json.

    The manifest carries no dates or host paths, so it is identical on every run with the same inputs.
    Files named in an earlier manifest but no longer in the corpus are removed; nothing else is touched.
    """
    previous = check_output(out, max_side)
    missing = sorted({e.source for e in spec.entries} - set(roots))
    if missing:
        raise UserError(f"no files for sources {missing}; check the split file")
    absent = [f"{e.source}:{e.path}" for e in spec.entries if not (roots[e.source].root / e.path).is_file()]
    if absent:
        raise UserError(f"{len(absent)} photos are missing from their sources (first: {absent[0]}); the package versions may have changed, update scripts/corpus_split.json")
    out.mkdir(parents=True, exist_ok=True)
    (out / "licences").mkdir(exist_ok=True)
    files = []
    for entry in tqdm(spec.entries, desc=f"re-encoding to <= {max_side} px", unit="photo"):
        fmt = spec.formats[entry.split]
        data, original, size = reencode(roots[entry.source].root / entry.path, max_side, fmt, entry.crop)
        name = entry.output_name(spec.formats)
        _write_atomic(out / name, data)
        record = {
            "file": name,
            "split": entry.split,
            "source": entry.source,
            "source_version": roots[entry.source].version,
            "original_path": entry.path,
            "original_size_hw": list(original),
            "size_hw": list(size),
            "licence": entry.licence,
            "author": entry.author,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if entry.crop is not None:
            record["crop_ltrb"] = list(entry.crop)
        files.append(record)
    licence_files = []
    for source, root in sorted(roots.items()):
        for licence in root.licence_files:
            name = f"licences/{source}.{licence.name}"
            _write_atomic(out / name, licence.read_bytes())
            licence_files.append(name)
    for split in ("train", "val"):
        listed = sorted(f["file"] for f in files if f["split"] == split)
        _write_atomic(out / f"{split}.txt", "".join(f"{name}\n" for name in listed).encode())
    manifest = {
        "max_side": max_side,
        "formats": spec.formats,
        "jpeg_quality": JPEG_QUALITY,
        "counts": {s: sum(f["split"] == s for f in files) for s in ("train", "val")},
        "sources": {s: r.version for s, r in sorted(roots.items())},
        "licence_files": licence_files,
        "files": files,
    }
    if previous is not None:
        kept = {f["file"] for f in files} | set(licence_files)
        for old in previous.get("files", []) + [{"file": n} for n in previous.get("licence_files", [])]:
            if old["file"] not in kept:
                (out / old["file"]).unlink(missing_ok=True)
    _write_atomic(out / "manifest.json", (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    _write_atomic(out / NOTICE, notice([f for f in files if f["split"] == "train"], manifest["sources"]).encode())
    return manifest


def notice(files: list[dict], sources: dict[str, str]) -> str:
    """The attribution of the photos a model was trained on (NOTICE.md): it ships with the weights.

    `files` are manifest records; they are grouped by source package, licence and author, each group
    naming its photos by their paths inside the package (file names alone repeat: plasma's are all 2560x1600.jpg).
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for record in sorted(files, key=lambda r: (r["source"], r["licence"], r["author"], r["original_path"])):
        groups.setdefault((record["source"], record["licence"], record["author"]), []).append(record["original_path"])
    lines = [
        "# Data notice",
        "",
        f"Trained on {len(files)} photos of arbiscale's offline corpus (scripts/build_corpus.py, docs/CORPUS.md),",
        "re-encoded from these packages; the packages' copyright files are in licences/.",
    ]
    for source in sorted({source for source, _, _ in groups}):
        lines += ["", f"## {source} {sources[source]}", ""]
        for (group_source, licence, author), names in groups.items():
            if group_source == source:
                lines.append(f"- {author}, {licence}: {', '.join(names)}")
    return "\n".join(lines) + "\n"


def build(out: Path, max_side: int, workdir: Path | None, apt_update: bool, spec: Spec) -> dict:
    """Fetch every source, then write the corpus; options are checked first so a typo costs no download."""
    check_output(out, max_side)
    packages = sorted({e.source for e in spec.entries} - set(PYTHON_SOURCES))
    with tempfile.TemporaryDirectory(prefix="arbiscale-corpus-") as scratch:
        work = workdir if workdir is not None else Path(scratch)
        hint = f"put the .deb files in {work / 'debs'}" if workdir is not None else "pass --workdir DIR with the .deb files in DIR/debs"
        debs = fetch_debs(packages, work / "debs", apt_update, hint)
        roots = extract_debs(debs, work / "extracted")
        roots.update(python_roots({e.source for e in spec.entries} & set(PYTHON_SOURCES)))
        return write_corpus(spec, roots, out, max_side)


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the corpus (new, empty or an earlier corpus)")
    parser.add_argument("--max-side", type=int, default=1024, help="longest side of the re-encoded photos, px")
    parser.add_argument("--workdir", type=Path, default=None, help="keep downloads and unpacked packages here for reuse (default: a temporary folder)")
    parser.add_argument("--apt-update", action="store_true", help="run `apt-get update` first (needs root)")
    parser.add_argument("--split-file", type=Path, default=SPEC_PATH, help="photo list and split (JSON)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out, args.max_side, args.workdir, args.apt_update, load_spec(args.split_file))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = manifest["counts"]
    print(f"{counts['train']} train + {counts['val']} val photos, {_folder_mb(args.out):.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
