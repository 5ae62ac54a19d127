"""Build a vector-art image set: an Iconify SVG icon set from the npm registry, rendered exactly at several sizes.

Vectors render exactly at any resolution, so every size of an icon is ground truth, which no photo set
gives and which an arbitrary-scale decoder needs (training against true renders at the target size, and
measuring the decoder against them). The default set is Noto Emoji (`@iconify-json/noto`, Apache-2.0).

    python scripts/build_vector_set.py --out /work/vector [--package @iconify-json/noto] [--sizes 32,64,128,256,512]
        [--match 'face'] [--tarball FILE] [--background '#ffffff']

The package is fetched with `npm pack` (nothing is installed) unless `--tarball` gives the .tgz. Icons
flagged hidden and skin-tone variants (names with "-tone") are left out; `--match REGEX` keeps only names
that match (e.g. `face` for the ~150 faces). A non-square icon is centred on a square canvas; transparency
is flattened on `--background`. The split is fixed by the name alone (sha256 of the name: about
`--val-percent` % of icons in val), so it stays the same when the set grows or the sizes change.

Output: `OUT/<size>/<name>.png` (RGB PNG), `OUT/<size>/train.txt` and `val.txt` (file names relative to that
folder, for `arbiscale train --data OUT/<size> --split OUT/<size>/train.txt`), `OUT/manifest.json` (package,
version, licence, author, sizes, background, per-icon split), the package's licence texts in
`OUT/licences/`, and `OUT/NOTICE.md` (the attribution, to ship with models trained on the set).
Rerunning with the same inputs writes the same bytes; a non-empty OUT without a manifest is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from arbiscale.data.images import write_atomic
from arbiscale.errors import UserError

MANIFEST = "manifest.json"
NOTICE = "NOTICE.md"


def fetch_package(package: str, workdir: Path) -> Path:
    """`npm pack PACKAGE` into `workdir`; the path of the .tgz."""
    try:
        done = subprocess.run(["npm", "pack", package, "--silent"], cwd=workdir, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"cannot run npm to fetch {package} ({error}): install Node.js/npm or pass --tarball") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["npm failed"])[-1]
        raise UserError(f"npm pack {package} failed ({last}): check the name and the registry, or pass --tarball")
    return workdir / done.stdout.strip().splitlines()[-1]


def read_package(tarball: Path) -> tuple[dict, dict, dict, dict[str, bytes]]:
    """(package.json, icons.json, info.json or {}, licence and readme files by name) from an npm tarball of an Iconify JSON set."""
    try:
        with tarfile.open(tarball) as archive:
            members = {member.name.removeprefix("package/"): member for member in archive.getmembers() if member.isfile()}

            def read(name: str) -> bytes:
                return archive.extractfile(members[name]).read()

            package, icons = json.loads(read("package.json")), json.loads(read("icons.json"))
            info = json.loads(read("info.json")) if "info.json" in members else {}
            licences = {name: read(name) for name in members if re.match(r"(?i)(licen[cs]e|copying|readme)", Path(name).name)}
    except (OSError, tarfile.TarError, KeyError, ValueError) as error:
        raise UserError(f"{tarball} is not an Iconify JSON package ({type(error).__name__}: {error}): pass an @iconify-json/* tarball") from None
    if "icons" not in icons:
        raise UserError(f"{tarball}: icons.json has no 'icons': pass an @iconify-json/* tarball")
    return package, icons, info, licences


def selected_icons(icons: dict, match: str | None) -> dict[str, dict]:
    """Name -> icon, without hidden icons and skin-tone variants, optionally only names matching `match`."""
    pattern = re.compile(match) if match else None
    return {name: icon for name, icon in sorted(icons["icons"].items()) if not icon.get("hidden") and "-tone" not in name and (pattern is None or pattern.search(name))}


def square_svg(icon: dict, defaults: dict) -> str:
    """The icon as a standalone SVG whose viewBox is square, the icon centred in it."""
    left, top = icon.get("left", defaults.get("left", 0)), icon.get("top", defaults.get("top", 0))
    width, height = icon.get("width", defaults.get("width", 16)), icon.get("height", defaults.get("height", 16))
    side = max(width, height)
    left, top = left - (side - width) / 2, top - (side - height) / 2
    return f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="{left} {top} {side} {side}">{icon["body"]}</svg>'


def render(svg: str, size: int, background: str) -> Image.Image:
    """An exact RGB render of `svg` at size x size, flattened on `background`."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, background=background, skip_system_fonts=True)
    return Image.open(io.BytesIO(bytes(png))).convert("RGB")


def split_of(name: str, val_percent: float) -> str:
    return "val" if int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10000 < val_percent * 100 else "train"


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def write_if_changed(path: Path, data: bytes) -> None:
    if not (path.is_file() and path.read_bytes() == data):
        write_atomic(path, lambda handle: handle.write(data), overwrite=True)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(f"--sizes {text!r} is not a comma-separated list of whole numbers, e.g. 32,64,128") from None
    if not sizes or sizes[0] < 1 or sizes[-1] > 4096:
        raise UserError(f"--sizes must list sides from 1 to 4096 pixels, got {text!r}")
    return sizes


def build(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"{out} is not empty and holds no {MANIFEST}: choose an empty or new --out")
    sizes = parse_sizes(args.sizes)
    with tempfile.TemporaryDirectory() as workdir:
        tarball = Path(args.tarball) if args.tarball else fetch_package(args.package, Path(workdir))
        package, icons, info, licences = read_package(tarball)
    chosen = selected_icons(icons, args.match)
    if not chosen:
        raise UserError(f"no icon of {package.get('name')} is left after the filters (--match {args.match!r}): loosen --match")
    defaults = {key: icons[key] for key in ("left", "top", "width", "height") if key in icons}
    splits = {name: split_of(name, args.val_percent) for name in chosen}
    for name, icon in tqdm(chosen.items(), desc="rendering icons", disable=None):
        svg = square_svg(icon, defaults)
        for size in sizes:
            try:
                image = render(svg, size, args.background)
            except ValueError as error:
                raise UserError(f"icon {name} does not render ({error})") from None
            write_if_changed(out / str(size) / f"{name}.png", png_bytes(image))
    for size in sizes:
        for split in ("train", "val"):
            lines = "".join(f"{name}.png\n" for name in chosen if splits[name] == split)
            write_if_changed(out / str(size) / f"{split}.txt", lines.encode())
    for name, data in licences.items():
        write_if_changed(out / "licences" / Path(name).name, data)
    manifest = {
        "package": package.get("name"),
        "version": package.get("version"),
        "licence": info.get("license") or package.get("license"),
        "author": info.get("author") or package.get("author"),
        "homepage": package.get("homepage"),
        "sizes": sizes,
        "background": args.background,
        "match": args.match,
        "val_percent": args.val_percent,
        "counts": {split: sum(1 for s in splits.values() if s == split) for split in ("train", "val")},
        "icons": {name: {"split": splits[name]} for name in chosen},
    }
    write_if_changed(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    write_if_changed(out / NOTICE, notice(manifest).encode())
    return out


def notice(manifest: dict) -> str:
    """The attribution that travels with the renders and with models trained on them (NOTICE.md)."""

    def as_dict(field: object, key: str) -> dict:  # Iconify gives author and licence as objects or as plain strings
        return field if isinstance(field, dict) else {key: str(field or "unknown")}

    author, licence = as_dict(manifest["author"], "name"), as_dict(manifest["licence"], "title")
    count = sum(manifest["counts"].values())
    selection = f", names matching {manifest['match']!r}" if manifest["match"] else ""
    return (
        f"# Data notice\n\nImages rendered from {manifest['package']} {manifest['version']} ({manifest.get('homepage') or ''}): "
        f"{count} icons{selection}, by {author.get('name', 'unknown')} ({author.get('url', '')}), licensed under "
        f"{licence.get('title') or licence.get('spdx')} ({licence.get('url', '')}). Rendered with resvg, transparency "
        f"flattened on {manifest['background']}.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--package", default="@iconify-json/noto", help="npm package of an Iconify JSON set (default @iconify-json/noto)")
    parser.add_argument("--tarball", help="the package's .tgz, instead of fetching it with npm")
    parser.add_argument("--sizes", default="32,64,128,256,512", help="render sides in pixels (default 32,64,128,256,512)")
    parser.add_argument("--match", help="keep only icon names matching this regular expression, e.g. face")
    parser.add_argument("--background", default="#ffffff", help="colour transparency is flattened on (default white)")
    parser.add_argument("--val-percent", type=float, default=10.0, help="share of icons in the validation split (default 10)")
    args = parser.parse_args(argv)
    try:
        out = build(args)
    except UserError as error:
        print(f"build_vector_set: error: {error}", file=sys.stderr)
        return 2
    counts = json.loads((out / MANIFEST).read_text())["counts"]
    print(f"{counts['train']} train + {counts['val']} val icons at {args.sizes} px in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
