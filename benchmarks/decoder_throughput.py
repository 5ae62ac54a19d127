"""Implicit decoder alone: output megapixels/s of our heads vs a straightforward LIIF query.

All render the same feature map with the same weights, the same output size and the same chunk
size, side by side in one process (interleaved repeats, median). "ours" is the paper's head
(blend="outputs", equal to LIIF's query); "first-layer" is the cheaper head (blend="first-layer":
the ensemble blended after the first layer, the hidden layers run once per query), a different
function of the same weights plus its phase term, so it is timed but not compared for equality
with LIIF; "first-layer grid" is that head rendering the output grid (`render_image`, what the
pipelines call), whose first layer is separable on a grid, asserted equal to its per-query form.
The straightforward query is the
LIIF paper's formulation, written out here: for each of the 4 ensemble shifts, nearest grid_sample
of the feature map, concatenation of [feature, relative offset, relative cell], the full MLP, and
the opposite-area blend. The machine's fp32 matmul rate is measured as the ceiling.

    python benchmarks/decoder_throughput.py --sizes 512 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from arbiscale.geometry import cell_size, coord_grid
from arbiscale.models import ImplicitAutoencoder, ImplicitHead
from arbiscale.models.autoencoder import with_head_blend
from arbiscale.models.implicit_head import PHASE_HARMONICS
from arbiscale.presets import get_preset
from common import cpu_name, publish  # benchmarks/, the script's folder


class StraightforwardLiif(nn.Module):
    """LIIF's query as published: per shift, gather by grid_sample, concatenate, full MLP.

    Equal to our head except where an output pixel centre falls exactly on a feature-cell centre on
    the image border (odd integer scales such as 1x or 3x): there LIIF's zero areas (+1e-9) blend
    the cell 50/50 with its neighbour. The default sizes (8x and 16x) never hit that case.
    """

    def __init__(self, head: ImplicitHead) -> None:
        super().__init__()
        first = nn.Linear(head.geometry_proj.in_features + head.feature_proj.in_channels, head.feature_proj.out_channels)
        with torch.no_grad():
            first.weight.copy_(torch.cat([head.feature_proj.weight[:, :, 0, 0], head.geometry_proj.weight], dim=1))
            first.bias.copy_(head.feature_proj.bias)
        self.imnet = nn.Sequential(first, *head.mlp)

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        height, width = feat.shape[-2:]
        shift_y, shift_x, eps_shift = 1 / height, 1 / width, 1e-6
        feat_coord = coord_grid((height, width), feat.device).t().reshape(1, 2, height, width).expand(feat.shape[0], -1, -1, -1)
        preds, areas = [], []
        for vy in (-1, 1):
            for vx in (-1, 1):
                coord_ = coord.clone()
                coord_[:, :, 0] += vy * shift_y + eps_shift
                coord_[:, :, 1] += vx * shift_x + eps_shift
                coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
                grid = coord_.flip(-1).unsqueeze(1)
                q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)
                rel_coord = coord - q_coord
                rel_coord[:, :, 0] *= height
                rel_coord[:, :, 1] *= width
                rel_cell = cell.clone()
                rel_cell[:, :, 0] *= height
                rel_cell[:, :, 1] *= width
                inp = torch.cat([q_feat, rel_coord, rel_cell], dim=-1)
                batch, num = coord.shape[:2]
                preds.append(self.imnet(inp.view(batch * num, -1)).view(batch, num, -1))
                areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
        total = torch.stack(areas).sum(dim=0)
        areas = areas[::-1]  # each prediction is weighted by the area of the diagonally opposite rectangle
        return sum(pred * (area / total).unsqueeze(-1) for pred, area in zip(preds, areas))

    def forward(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, chunk_size: int) -> torch.Tensor:
        cell = cell.reshape(1, 1, 2).expand(*coord.shape[:2], 2)
        pieces = [self.query(feat, coord[:, start : start + chunk_size], cell[:, start : start + chunk_size]) for start in range(0, coord.shape[1], chunk_size)]
        return torch.cat(pieces, dim=1)


def mlp_flops(head: ImplicitHead) -> dict[str, int]:
    """Multiply-add FLOPs (2 per MAC) per output pixel of each formulation, counted analytically.

    LIIF runs the whole MLP (first layer over [feature, offset, cell]) for each of the K ensemble
    neighbours. Ours runs the geometry projection once per query, the hidden layers K times and
    the last layer once (on the blended hidden state); the per-cell feature projection is
    amortised over many queries and left out.
    """
    neighbours = 4 if head.local_ensemble else 1
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    hidden = sum(m.in_features * m.out_features for m in linears[:-1])
    last = linears[-1].in_features * linears[-1].out_features
    first_out = head.feature_proj.out_channels
    geometry = head.geometry_proj.in_features * first_out
    liif = neighbours * ((head.feature_proj.in_channels + head.geometry_proj.in_features) * first_out + hidden + last)
    ours = geometry + neighbours * hidden + last
    # first-layer blend: the K gathered pre-activations blended (K MACs each), geometry and phase terms, the MLP once.
    phase = 4 * PHASE_HARMONICS * first_out
    blended = neighbours * first_out + geometry + phase + hidden + last
    return {"LIIF": 2 * liif, "ours": 2 * ours, "first-layer": 2 * blended, "first-layer grid": 2 * blended}


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Median rate of a large square matmul: the practical ceiling for the MLP's dense layers."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--latent", type=int, default=64, help="side of the square feature map")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="square output sides")
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[65536, 4096], help="queries per chunk, same for both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also time both under bf16 autocast")
    parser.add_argument("--output", help="also write the table to this markdown file")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    autoencoder = ImplicitAutoencoder(**get_preset(args.preset).autoencoder)
    head = autoencoder.head.eval()
    reference = StraightforwardLiif(head).eval()
    blended = with_head_blend(autoencoder, "first-layer").head.eval()
    nn.init.normal_(blended.phase_proj.weight, std=0.1)
    features = torch.randn(1, head.feature_proj.in_channels, args.latent, args.latent)
    flops = mlp_flops(head)
    ceiling = {"fp32": matmul_gflops()}
    if args.bf16:  # emulated (slow) on CPUs without native bf16: measured only when asked
        ceiling["bf16"] = matmul_gflops(dtype=torch.bfloat16)
    widths = [head.feature_proj.out_channels] + [m.out_features for m in head.mlp if isinstance(m, nn.Linear)]
    lines = [
        (
            f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {datetime.date.today()}; "
            f"preset {args.preset} head on a {args.latent}x{args.latent}x{head.feature_proj.in_channels} feature map, "
            f"MLP widths {widths}, local ensemble {head.local_ensemble}."
        ),
        (
            f"Matmul ceiling (2048^3 torch.matmul): {', '.join(f'{name} {rate:.0f} GFLOP/s' for name, rate in ceiling.items())}. "
            f"MLP FLOPs per output pixel: LIIF {flops['LIIF']}, ours {flops['ours']}, first-layer {flops['first-layer']}."
        ),
        "",
        "| output | chunk | implementation | MP/s | median ms | min ms | GFLOP/s | of matmul ceiling | speed-up vs LIIF fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    precisions = {"fp32": contextlib.nullcontext, "bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}
    variants = [(impl, precision) for precision in (["fp32", "bf16"] if args.bf16 else ["fp32"]) for impl in ("first-layer grid", "first-layer", "ours", "LIIF")]
    models = {"ours": head, "LIIF": reference, "first-layer": blended}

    def run(impl: str, precision: str, coord: torch.Tensor, cell: torch.Tensor, chunk: int) -> torch.Tensor:
        with precisions[precision]():
            if impl == "first-layer grid":
                side = round(coord.shape[1] ** 0.5)
                return blended.render_image(features, (side, side), chunk).flatten(2).transpose(1, 2)
            return models[impl](features, coord, cell, chunk)

    notes = []
    with torch.inference_mode():
        for side in args.sizes:
            coord = coord_grid((side, side)).unsqueeze(0)
            cell = cell_size((side, side))
            for chunk in args.chunk_sizes:
                outputs = {variant: run(*variant, coord, cell, chunk).float() for variant in variants}
                error = (outputs["ours", "fp32"] - outputs["LIIF", "fp32"]).abs().max().item()
                assert error < 1e-4, f"our head and the LIIF query disagree by {error}"
                grid_error = (outputs["first-layer grid", "fp32"] - outputs["first-layer", "fp32"]).abs().max().item()
                assert grid_error < 1e-4, f"the first-layer head's grid render and its query disagree by {grid_error}"
                note = f"{side}x{side}, chunk {chunk}: max |ours - LIIF| in fp32 {error:.1e}, |first-layer grid - query| {grid_error:.1e}"
                if args.bf16:
                    note += f", max |bf16 - fp32| of ours {(outputs['ours', 'bf16'] - outputs['ours', 'fp32']).abs().max().item():.1e}"
                notes.append(note)
                times = {variant: [] for variant in variants}
                for _ in range(args.repeats):
                    for variant in variants:
                        times[variant].append(timed(run, *variant, coord, cell, chunk))
                medians = {variant: statistics.median(values) for variant, values in times.items()}
                for (impl, precision), seconds in medians.items():
                    rate = side * side * flops[impl] / seconds / 1e9
                    print(f"{side} chunk {chunk} {impl} {precision}: median {seconds:.3f} s, min {min(times[impl, precision]):.3f} s", flush=True)
                    lines.append(
                        f"| {side}x{side} | {chunk} | {impl} {precision} | {side * side / seconds / 1e6:.3f} | {seconds * 1e3:.0f} | "
                        f"{min(times[impl, precision]) * 1e3:.0f} | {rate:.0f} | {rate / ceiling[precision]:.0%} {precision} | "
                        f"{medians['LIIF', 'fp32'] / seconds:.2f}x |"
                    )
    publish("\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n", args.output)


if __name__ == "__main__":
    main()
