"""What both pipelines share: the three components, strict loading, samplers by name, precision."""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image

from ..data.images import tensor_to_image
from ..errors import CheckpointMismatchError, UserError
from ..manifest import manifest_problem
from ..models.autoencoder import ImplicitAutoencoder
from ..models.loading import load_component
from ..models.unet import LatentDenoiser
from ..precision import autocast
from ..sampling.schedulers import SAMPLERS, make_scheduler, training_schedule_of

# Saved schedulers by class name: every sampler's, and the diffusers classes they extend (a folder saved with
# diffusers' own DDIMScheduler loads as the NaN-safe one).
SCHEDULER_CLASSES = {cls.__name__: cls for cls, _ in SAMPLERS.values()} | {"DDIMScheduler": SAMPLERS["ddim"][0]}


def bundled_model_dir(folder: str) -> Path:
    """Where the bundled model stored in `folder` (a value of `bundled_models`) ships inside the package."""
    return Path(str(resources.files("arbiscale") / "weights" / folder))


def images_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> B 8-bit RGB PIL images (clamped and rounded, as saved files are)."""
    return [tensor_to_image(image) for image in images]


class LatentImplicitPipeline(DiffusionPipeline):
    """Frozen autoencoder (encoder + implicit decoder), latent denoiser, and its training noise schedule.

    `scheduler` only fixes the noise schedule the denoiser was trained on; every call builds a fresh
    sampler of the requested kind on that schedule, so calls never share scheduler state.
    """

    task: str = ""
    command: str = ""
    bundled_models: dict[str, str] = {}  # name -> folder under arbiscale/weights; the first is the default

    def __init__(self, autoencoder: ImplicitAutoencoder, denoiser: LatentDenoiser, scheduler: SchedulerMixin) -> None:
        super().__init__()
        if denoiser.config.task != self.task:
            raise UserError(f"this denoiser was trained for task {denoiser.config.task!r}, but {type(self).__name__} needs {self.task!r}: use the model made for this command")
        if denoiser.config.latent_channels != autoencoder.config.latent_channels:
            raise CheckpointMismatchError(
                f"the denoiser works on {denoiser.config.latent_channels}-channel latents but the autoencoder makes "
                f"{autoencoder.config.latent_channels}: save them together from one training run"
            )
        self.register_modules(autoencoder=autoencoder, denoiser=denoiser, scheduler=scheduler)

    @classmethod
    def bundled_path(cls, path: str | Path | None) -> Path | None:
        """The bundled folder that `path` names (None: the default model), or None when `path` is a folder of
        the user's. A name that is also an existing folder means the folder."""
        if path is None:
            path = next(iter(cls.bundled_models))
        if isinstance(path, str) and path in cls.bundled_models and not Path(path).exists():
            return bundled_model_dir(cls.bundled_models[path])
        return None

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> "LatentImplicitPipeline":
        """Load a folder written by `save_pretrained`, or a bundled model by name (`bundled_models`; None:
        the default one), refusing any weight that does not fit its config."""
        if (bundled := cls.bundled_path(path)) is not None:
            path = bundled
            if not (path / "model_index.json").is_file():
                raise UserError(f"no bundled model is installed (expected {path}): pass the folder of a saved model")
            if (problem := manifest_problem(path)) is not None:
                raise CheckpointMismatchError(f"the bundled model in {path} is damaged ({problem}): reinstall arbiscale")
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path} is neither a folder nor a bundled model's name ({', '.join(cls.bundled_models)}): pass one of them or a folder written by save_pretrained")
        index = read_model_index(path)
        if index.get("_class_name") != cls.__name__:
            raise UserError(f"{path} is a saved {index.get('_class_name')}, but `arbiscale {cls.command}` needs a saved {cls.__name__}: give its folder as `path`")
        autoencoder = load_component(ImplicitAutoencoder, path / "autoencoder")
        denoiser = load_component(LatentDenoiser, path / "denoiser")
        return cls(autoencoder, denoiser, load_scheduler(path / "scheduler", index.get("scheduler")))

    def make_sampler(self, name: str) -> SchedulerMixin:
        """A fresh sampler of kind `name` on the schedule the denoiser was trained with."""
        return make_scheduler(name, **training_schedule_of(self.scheduler))

    default_ddim_eta: float = 1.0  # the paper's stochastic DDIM; a pipeline may choose another

    @classmethod
    def resolve_eta(cls, sampler: str, eta: float | None) -> float | None:
        """DDIM without an eta gets the pipeline's `default_ddim_eta`; other samplers take none."""
        return cls.default_ddim_eta if eta is None and sampler == "ddim" else eta

    def precision(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        """Autocast the networks to bf16/fp16 (the sampler arithmetic stays float32); None or fp32: off."""
        return autocast(self.device, dtype)

    def render(self, latents: torch.Tensor, size: tuple[int, int], decode_chunk: int) -> torch.Tensor:
        """Decode raw latents at (H, W) into one float32 batch, one image at a time and in bands of
        rows, so that beyond the output itself memory is bounded by the chunk size, not by (H, W)."""
        if decode_chunk < 1:
            raise UserError(f"the decode chunk must be at least 1 query point, got {decode_chunk}")
        images = torch.empty((len(latents), self.autoencoder.config.image_channels, *size), device=latents.device, dtype=torch.float32)
        for latent, image in zip(latents.split(1), images.split(1)):
            self.autoencoder.decode(latent, size, decode_chunk, out=image)
        return images.clamp_(-1, 1)


def read_model_index(path: Path) -> dict:
    """model_index.json of a saved pipeline folder (it names the pipeline class and each component's)."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise UserError(f"no arbiscale model at {path}: expected a folder with model_index.json (written by save_pretrained)")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointMismatchError(f"cannot read {index_file} ({error}): re-save the model") from None
    if not isinstance(index, dict):
        raise CheckpointMismatchError(f"{index_file} is not a JSON object: re-save the model")
    return index


def load_scheduler(path: Path, entry: list | None) -> SchedulerMixin:
    """The saved noise schedule, through the scheduler class model_index.json names."""
    class_name = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
    if class_name not in SCHEDULER_CLASSES:
        raise CheckpointMismatchError(f"model_index.json names scheduler {class_name!r}; expected one of {', '.join(SCHEDULER_CLASSES)}: re-save the model")
    try:
        return SCHEDULER_CLASSES[class_name].from_pretrained(path)
    except (OSError, ValueError, NotImplementedError) as error:  # NotImplementedError: an unknown beta_schedule
        raise CheckpointMismatchError(f"cannot load the scheduler from {path} ({error}): re-save the model") from None
