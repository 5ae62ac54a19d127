"""Generation evaluation: scale consistency (SelfSSIM over sizes) and, with an extractor, FID/KID/PR.

- Image i is sampled with seed S + i (as `arbiscale generate` does) and rendered at every size from
  its one latent; renders are rounded to 8 bits (the saved images) before scoring.
- SelfSSIM (`arbiscale.metrics.self_ssim`): entry (i, j) compares the render at size i with the render
  at size j resized (named bicubic) to size i; the report gives the mean over images.
- FID, KID and precision/recall compare the features of the renders at each size with those of the
  reference images (`--ref`, each at its own size: the Inception network resizes its input). Without a
  feature extractor file they are "unavailable", never a number from other weights.
- Sharding as in SR: process p of n takes images p, p+n, ... (and the same share of the reference
  images); results are gathered and reduced on the main process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from ..data.images import image_to_tensor, load_image, resize, save_image
from ..geometry import format_size
from ..metrics import FeatureExtractor, Unavailable, frechet_distance, kernel_inception_distance, precision_recall, quantize_8bit, self_ssim
from ..pipelines import GenerationPipeline
from .report import check_report_dir, format_value, image_grid, markdown_table, plot_matrix, write_json, write_text

REPORT_FILES = ("results.json", "report.md", "self_ssim.png", "samples.png")
# Nearest neighbours are searched at this side (renders and training images resized to it): small enough for
# thousands of images, large enough that a copy (PSNR well above 30 dB) stands apart from a new picture.
NEIGHBOUR_SIDE = 64


@dataclass(frozen=True)
class GenEvalConfig:
    sizes: tuple[tuple[int, int], ...]
    num_images: int
    seed: int = 0
    batch_size: int = 4
    resize: str = "matlab"
    measure: str = "ssim"
    sampling: dict = field(default_factory=dict)
    autocast_dtype: torch.dtype | None = None
    grid_images: int = 4
    neighbours: tuple[Path, ...] = ()  # training images: each sample's nearest one is found and shown


def _shard(count: int, state: PartialState) -> list[int]:
    return list(range(state.process_index, count, state.num_processes))


def _gather(items: list, state: PartialState) -> list:
    return gather_object(items) if state.num_processes > 1 else items


def generate_shard(pipe: GenerationPipeline, config: GenEvalConfig, extractor: FeatureExtractor | EncoderFeatures | None, state: PartialState, progress: bool) -> list[dict]:
    """{index, self_ssim (N,N), features per size, renders (grid images only)} for this process's images."""
    shard = _shard(config.num_images, state)
    records = []
    bar = tqdm(total=len(shard), desc="eval gen", unit="image", disable=not (progress and state.is_main_process))
    for start in range(0, len(shard), config.batch_size):
        indices = shard[start : start + config.batch_size]
        generators = [torch.Generator().manual_seed(config.seed + index) for index in indices]
        result = pipe(list(config.sizes), num_images=len(indices), generator=generators, autocast_dtype=config.autocast_dtype, **config.sampling)
        renders = [quantize_8bit(images) for images in result.images]
        matrices = self_ssim(renders, method=config.resize, measure=config.measure).cpu()
        features = [extractor(images).cpu() for images in renders] if extractor is not None else None
        thumbnails = resize(renders[-1], (NEIGHBOUR_SIDE, NEIGHBOUR_SIDE)).cpu() if config.neighbours else None
        for row, index in enumerate(indices):
            records.append(
                {
                    "index": index,
                    "thumbnail": thumbnails[row] if thumbnails is not None else None,
                    "self_ssim": matrices[row],
                    "features": [f[row] for f in features] if features is not None else None,
                    "renders": [images[row].cpu() for images in renders] if index < config.grid_images else None,
                }
            )
        bar.update(len(indices))
    bar.close()
    return records


class EncoderFeatures(torch.nn.Module):
    """The generator's own frozen encoder as a feature network, for when no Inception file is at hand:
    images resized to its training side and encoded, the latent averaged over 2x2 regions. The distances
    on these are FD-encoder and KD-encoder, not FID and KID: the network learnt this data's latents, not
    ImageNet's classes, so its numbers compare models on one encoder only, never with published FIDs."""

    distance_names = ("FD-encoder", "KD-encoder")

    def __init__(self, autoencoder, side: int) -> None:
        super().__init__()
        self.autoencoder, self.side = autoencoder, side
        self.source = f"the model's own encoder at {side} px, latents averaged over 2x2 regions"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        latent = self.autoencoder.encode(resize(images.float(), (self.side, self.side)))
        return torch.nn.functional.adaptive_avg_pool2d(latent.float(), 2).flatten(1)


def nearest_neighbours(samples: torch.Tensor, references: torch.Tensor) -> tuple[list[int], list[float]]:
    """For each of (N, 3, h, w) samples in [-1, 1], the index of the nearest of (M, 3, h, w) references by
    mean squared error, and the PSNR between the two (range 2)."""
    mse = torch.cdist(samples.flatten(1).double(), references.flatten(1).double()).pow(2) / samples[0].numel()
    best, index = mse.min(dim=1)
    return index.tolist(), (10 * torch.log10(4 / best.clamp_min(1e-12))).tolist()


def load_thumbnails(paths: tuple[Path, ...]) -> torch.Tensor:
    """(M, 3, s, s) training images resized to the neighbour side (s = NEIGHBOUR_SIDE), as the samples are."""
    return torch.cat([resize(image_to_tensor(load_image(path))[None], (NEIGHBOUR_SIDE, NEIGHBOUR_SIDE)) for path in paths])


def reference_features(paths: list[Path], extractor: FeatureExtractor | EncoderFeatures, state: PartialState, device: torch.device) -> torch.Tensor:
    """(N_ref, D) features of the reference images, in path order, computed sharded."""
    rows = [(index, extractor(image_to_tensor(load_image(paths[index]))[None].to(device))[0].cpu()) for index in _shard(len(paths), state)]
    rows = _gather(rows, state)
    return torch.stack([feature for _, feature in sorted(rows, key=lambda row: row[0])])


def distribution_metrics(generated: torch.Tensor, reference: torch.Tensor) -> dict:
    """FID, KID (mean, std) and precision/recall (k = 3, or fewer for tiny sets) of one size."""
    kid_mean, kid_std = kernel_inception_distance(reference, generated)
    k = min(3, len(generated) - 1, len(reference) - 1)
    precision, recall = precision_recall(reference, generated, k=k)
    return {"fid": frechet_distance(reference, generated), "kid": kid_mean, "kid_std": kid_std, "precision": precision, "recall": recall, "pr_k": k}


def evaluate_gen(
    pipe: GenerationPipeline,
    config: GenEvalConfig,
    extractor: FeatureExtractor | EncoderFeatures | Unavailable,
    reference: list[Path] | None,
    state: PartialState,
    device: torch.device,
    progress: bool = True,
) -> tuple[dict, list[list[torch.Tensor]]] | None:
    """(results, grid rows) on the main process, None on the others."""
    usable = extractor if not isinstance(extractor, Unavailable) and reference is not None else None
    records = _gather(generate_shard(pipe, config, usable, state, progress), state)
    ref_features = reference_features(reference, usable, state, device) if usable is not None else None
    if not state.is_main_process:
        return None
    records = sorted(records, key=lambda record: record["index"])
    labels = [format_size(size) for size in config.sizes]
    per_image = torch.stack([record["self_ssim"] for record in records])
    results = {"self_ssim": {"measure": config.measure, "resize": config.resize, "sizes": labels, "matrix": per_image.mean(dim=0).tolist(), "per_image": per_image.tolist()}}
    if usable is None:
        reason = str(extractor) if isinstance(extractor, Unavailable) else "unavailable (no `ref` folder of real images given)"
        results["distribution"] = reason
    else:
        results["distribution"] = {label: distribution_metrics(torch.stack([record["features"][i] for record in records]), ref_features) for i, label in enumerate(labels)}
        results["num_reference"] = len(reference)
        results["distance_names"] = list(usable.distance_names)
    rows = [record["renders"] for record in records if record["renders"] is not None]
    if config.neighbours:
        index, closeness = nearest_neighbours(torch.stack([record["thumbnail"] for record in records]), load_thumbnails(config.neighbours))
        results["nearest_neighbours"] = {
            "side": NEIGHBOUR_SIDE,
            "num_training_images": len(config.neighbours),
            "index": index,
            "path": [str(config.neighbours[i]) for i in index],
            "psnr": closeness,
        }
        size = rows[0][-1].shape[-2:] if rows else None
        for row, i in zip(rows, index):
            row.append(resize(image_to_tensor(load_image(config.neighbours[i]))[None], tuple(size))[0])
    return results, rows


def write_gen_report(out: Path, header: dict, results: dict, rows: list[list[torch.Tensor]], config: GenEvalConfig, overwrite: bool) -> list[Path]:
    """results.json, report.md, self_ssim.png (heatmap) and samples.png; returns the paths written."""
    check_report_dir(out, REPORT_FILES, overwrite)
    data = {**header, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **results}
    written = [write_json(out / "results.json", data, overwrite)]
    labels = results["self_ssim"]["sizes"]
    matrix = results["self_ssim"]["matrix"]
    measure = "MS-SSIM" if config.measure == "ms-ssim" else "SSIM"
    title = f"SelfSSIM ({measure}, {config.resize} bicubic), mean of {header['num_images']} images"
    heatmap = plot_matrix(out / "self_ssim.png", labels, matrix, title, overwrite)
    written += [heatmap] if heatmap is not None else []
    if rows:
        columns = [*labels, "nearest training image"] if config.neighbours else labels
        grid = image_grid(rows, columns, [f"seed {config.seed + i}" for i in range(len(rows))])
        written.append(save_image(grid, out / "samples.png", overwrite=overwrite))

    lines = [
        "# Generation evaluation",
        "",
        f"- model: {header['model']}",
        f"- {header['num_images']} images, image i sampled with seed {config.seed} + i; sampler {header['sampler']}, {header['steps']} steps",
        f"- renders scored as 8-bit images; SelfSSIM row i, column j: render at size i vs render at size j resized to size i ({config.resize} bicubic), {measure}, RGB, no shave",
        f"- command: `{header['command']}`",
        f"- date: {data['date']}",
        "",
        "## SelfSSIM (mean over images)",
        "",
        markdown_table(["size", *labels], [[label, *(format_value(v) for v in row)] for label, row in zip(labels, matrix)]),
        "",
    ]
    if heatmap is not None:
        lines += ["![SelfSSIM](self_ssim.png)", ""]
    distribution = results["distribution"]
    if isinstance(distribution, str):
        lines += ["## FID / KID / precision / recall", "", distribution, ""]
    else:
        metrics = ("fid", "kid", "precision", "recall")
        frechet, kernel = results["distance_names"]
        lines += [
            f"## {frechet} / {kernel} / precision / recall",
            "",
            f"Against {results['num_reference']} reference images from {header['ref']}, features: {header['features']}.",
            "",
            markdown_table(["size", frechet, kernel, "precision", "recall"], [[label, *(format_value(distribution[label][m]) for m in metrics)] for label in labels]),
            "",
        ]
    if config.neighbours:
        closeness = results["nearest_neighbours"]["psnr"]
        lines += [
            "## Nearest training images",
            "",
            f"Each sample's nearest of {len(config.neighbours)} training images (both resized to {NEIGHBOUR_SIDE} px, mean squared "
            f"error): PSNR to it median {sorted(closeness)[len(closeness) // 2]:.2f} dB, highest {max(closeness):.2f} dB "
            "(a copy scores well above 30 dB).",
            "",
        ]
    if rows:
        more = ", and its nearest training image" if config.neighbours else ""
        lines += ["## Samples", "", f"Rows: images; columns: the same latent rendered at each size{more}.", "", "![samples](samples.png)", ""]
    written.insert(1, write_text(out / "report.md", "\n".join(lines), overwrite))
    return written
