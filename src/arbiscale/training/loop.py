"""One accelerate training loop for every stage (autoencoder, LDM denoising, alignment).

A stage is a `TrainingTask`:
- `model`: the one trainable module (a diffusers ModelMixin, or a module whose `save` writes one).
  The loop wraps it (DDP, mixed precision) and passes the wrapped module to `loss`: all trainable
  compute must go through its `forward`, or DDP does not synchronise the gradients.
- `frozen`: modules the loss uses without training them; the loop moves them to the device, sets
  eval mode and turns their gradients off.
- `dataset`: a map-style dataset of dict items. Each epoch the loop calls `dataset.set_epoch(epoch)`
  if it exists and reads a permutation fixed by (seed, epoch); a random dataset should draw item i
  from a generator seeded by (seed, epoch, i) (see `arbiscale.data.item_generator`), so a resumed
  run replays exactly the batches an uninterrupted one would have read.
- `loss(model, batch) -> (scalar loss, {name: float})`: batch tensors are already on the device and
  the call runs under the accelerator's autocast; return the same names at every step.
- `validate(model) -> {name: float}`: run on the main process with the unwrapped model (the EMA
  weights when EMA is on), in eval mode, without gradients.
- `save(model, directory)`: the final model; by default `save_pretrained`.
- `prepare(run_dir, is_main_process)`: work done once per run, before the first step, after the
  frozen modules are on the device (e.g. encoding a pool of training items into the run folder).

`train(task, TrainSettings(...))` runs it on CPU, one GPU or many (under `accelerate launch`):
progress bar, `RUN_DIR/metrics.jsonl`, atomic checksummed checkpoints (see `checkpoints`), `--resume`,
and the final model in `RUN_DIR/model/`. A run folder is locked while a run trains in it, and a
resume that changes what the run learns from (`TrainSettings.run_inputs`, batch size, lr, seed, ...)
is refused unless `allow_changes`. Set the seed (accelerate.utils.set_seed) before building the
model, so every process starts from the same weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import parse_flag_from_env, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm.auto import tqdm

from ..data.crops import item_generator
from ..errors import UserError
from ..files import write_atomic
from ..pipelines.memory import check_free
from ..precision import native_bf16
from . import checkpoints

METRICS_FILE = "metrics.jsonl"
SETTINGS_FILE = "settings.json"
MODEL_DIR = "model"


class TrainingTask(ABC):
    """What a training stage provides to `train` (see the module docstring)."""

    model: nn.Module
    dataset: Dataset
    frozen: Sequence[nn.Module] = ()

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar training loss of one batch, and named parts of it for the metrics log."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics; none by default."""
        return {}

    def save(self, model: nn.Module, directory: Path) -> None:
        """Write the final model so that `load_component` can read it."""
        model.save_pretrained(directory)

    def prepare(self, run_dir: Path, is_main_process: bool) -> None:
        """Once per run, before the first step; nothing by default."""


@dataclass
class TrainSettings:
    out_dir: Path
    steps: int
    batch_size: int
    lr: float
    lr_schedule: str = "constant"  # or "cosine" / "linear" decay to 0 at `steps` (diffusers' schedules)
    warmup_steps: int = 0  # linear ramp from 0 to `lr` over these first steps
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    checkpoint_every: int = 1000
    validate_every: int = 1000
    log_every: int = 50
    seed: int = 0
    num_workers: int = 0
    mixed_precision: str = "no"  # "auto": bf16 where the device computes it natively (`precision.native_bf16`), else "no"
    resume: bool = False
    keep_checkpoints: int = 2
    # What else the run learns from (data, split, preset, stage options), as recorded strings: a resume compares them.
    run_inputs: dict = field(default_factory=dict)
    allow_changes: bool = False


# Settings a resume may change freely: how long and how often, not what is learned.
_FREE_ON_RESUME = {"out_dir", "steps", "checkpoint_every", "validate_every", "log_every", "num_workers", "resume", "keep_checkpoints", "allow_changes"}
LOCK_FILE = ".lock"


class EpochPermutation(Sampler[int]):
    """Indices in an order fixed by (seed, epoch): the same on every process and after a resume."""

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.length, generator=item_generator(self.seed, self.epoch)).tolist())


def _warn(accelerator: Accelerator, message: str) -> None:
    if accelerator.is_main_process:
        print(f"arbiscale: warning: {message}", file=sys.stderr)


def _resume_point(run_dir: Path, resume: bool, accelerator: Accelerator) -> Path | None:
    """The checkpoint to resume from, None for a fresh run; refuses to start over anything already there."""
    nearest = next(path for path in (run_dir, *run_dir.parents) if path.exists())
    if not nearest.is_dir():
        raise UserError(f"`out_dir` {run_dir}: {nearest} is a file: choose a folder for the run")
    occupied = run_dir.exists() and any(run_dir.iterdir())
    if not resume:
        if occupied:
            raise UserError(f"run folder {run_dir} is not empty: pass `resume` to continue that run, or choose a new `out_dir`")
        return None
    if not occupied:
        _warn(accelerator, f"nothing to resume in {run_dir}; starting a new run")
        return None
    found, damaged = checkpoints.newest_intact(run_dir)
    for line in damaged:
        _warn(accelerator, line)
    if found is None and not damaged and (run_dir / SETTINGS_FILE).is_file():  # a run stopped before its first checkpoint
        _warn(accelerator, f"the run in {run_dir} stopped before its first checkpoint; starting it again from step 0")
        return None
    if found is None:
        raise UserError(f"no intact checkpoint in {run_dir / checkpoints.CHECKPOINTS} to resume from: start a new run with another `out_dir`")
    return found


def _changes(run_dir: Path, settings: TrainSettings) -> list[str]:
    """'name: old -> new' for every setting a resume would change that changes what the run learns."""
    try:
        recorded = json.loads((run_dir / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return []
    current = json.loads(json.dumps(asdict(settings), default=str))
    changed = []
    for name, value in current.items():
        if name in _FREE_ON_RESUME or name not in recorded:
            continue
        old = recorded[name]
        if isinstance(value, dict) and isinstance(old, dict):
            changed += [f"{key}: {old.get(key)} -> {value.get(key)}" for key in sorted(set(value) | set(old)) if old.get(key) != value.get(key)]
        elif old != value:
            changed.append(f"{name}: {old} -> {value}")
    return changed


def _lock(run_dir: Path):
    """An exclusive lock on the run folder, held until the returned file is closed; a second run is refused."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        return None
    handle = open(run_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"run folder {run_dir} is in use by {holder}: wait for it to finish, or choose another `out_dir`") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}")
    handle.flush()
    return handle


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop log lines written after the checkpoint being resumed, so the log reads as one run."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    write_atomic(path, lambda handle: handle.write("".join(f"{line}\n" for line in kept).encode("utf-8")), overwrite=True)


@contextlib.contextmanager
def _writing(what: Path, temp: Path, run_dir: Path):
    """Turn a failed write (a full disk, a folder gone read-only) into one line; the half-written temp goes."""
    try:
        yield
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        newest = checkpoints.list_checkpoints(run_dir)
        since = f"from {newest[-1].name}" if newest else "from the start"
        raise UserError(f"cannot write {what} ({error.strerror or error}): free space on that disk (or fix its permissions), then `resume` continues {since}") from None


def _save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep: int) -> None:
    final = checkpoints.checkpoint_dir(run_dir, step)
    temp = checkpoints.temp_dir(final)
    with _writing(final, temp, run_dir):
        if accelerator.is_main_process:
            shutil.rmtree(temp, ignore_errors=True)
            temp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            checkpoints.write_checkpoint_manifest(temp, step)
            checkpoints.publish(temp, final)
            checkpoints.prune(run_dir, keep)
        accelerator.wait_for_everyone()


def _save_model(task: TrainingTask, model: nn.Module, run_dir: Path) -> Path:
    final = run_dir / MODEL_DIR
    temp = run_dir / f".tmp-{MODEL_DIR}"
    with _writing(final, temp, run_dir):
        shutil.rmtree(temp, ignore_errors=True)
        task.save(model, temp)
        checkpoints.publish(temp, final)
    return final


class StopRequest:
    """While training, SIGINT and SIGTERM ask for a stop at the end of the current step, where the loop saves
    a checkpoint before it stops (a run interrupted between checkpoints loses nothing); a second signal stops
    at once. Handlers can only be set in the main thread; elsewhere the signals act as before."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _stop_agreed(accelerator: Accelerator, requested: bool) -> bool:
    """Whether any process was asked to stop: all stop at the same step (a collective is always all or none)."""
    if accelerator.num_processes == 1:
        return requested
    return accelerator.reduce(torch.tensor([float(requested)], device=accelerator.device), reduction="sum").item() > 0


MEMORY_PROBE_ITEMS = (1, 2)  # the batch sizes of the forwards that measure a step's memory, before the first step


def _check_step_memory(task: TrainingTask, model: nn.Module, accelerator: Accelerator, batch_size: int) -> None:
    """Refuse, before the first step, a batch that cannot fit in the free memory. A step holds what autograd
    saves for the backward pass, measured on forwards of one and two items (the difference is one item's
    share), plus the weights, their gradients and Adam's two moments."""
    saved = []
    for count in MEMORY_PROBE_ITEMS:
        items = [task.dataset[i % len(task.dataset)] for i in range(count)]
        batch = {key: value.to(accelerator.device) for key, value in default_collate(items).items()}
        total = 0

        def count_bytes(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        devices = [accelerator.device.index or 0] if accelerator.device.type == "cuda" else []
        with torch.random.fork_rng(devices), torch.autograd.graph.saved_tensors_hooks(count_bytes, lambda tensor: tensor), accelerator.autocast():
            task.loss(model, batch)  # with the random state restored after, so the run draws as it would without the check
        saved.append(total)
    per_item = max(saved[1] - saved[0], 0)
    state = 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    need = state + max(saved[0] - per_item, 0) + batch_size * per_item
    check_free(need, accelerator.device, f"a training step on a batch of {batch_size}", "lower `batch_size`")


def _mean_across_processes(accelerator: Accelerator, sums: dict[str, float], count: int) -> dict[str, float]:
    names = sorted(sums)
    values = torch.tensor([sums[n] / max(count, 1) for n in names], device=accelerator.device, dtype=torch.float64)
    values = accelerator.reduce(values, reduction="mean")
    return dict(zip(names, values.tolist()))


def _auto_precision() -> str:
    """bf16 where the device the loop will train on computes it natively, else "no". Decided without creating
    accelerate's state: one made before the Accelerator would not join the processes of a distributed launch."""
    on_gpu = torch.cuda.is_available() and not parse_flag_from_env("ACCELERATE_USE_CPU")
    return "bf16" if native_bf16("cuda" if on_gpu else "cpu") else "no"


def _release_precision(mixed_precision: str) -> None:
    """Let this call train in its own precision. accelerate keeps one precision per process and refuses an
    Accelerator asking for another, so a second `train` in one process (a notebook, a script running two stages)
    would fail; the precision state is dropped and the process group (accelerate's PartialState) kept."""
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)


def train(task: TrainingTask, settings: TrainSettings) -> Path:
    """Train `task.model` for `settings.steps` optimizer steps; returns the folder of the saved model."""
    if settings.mixed_precision == "auto":
        settings = replace(settings, mixed_precision=_auto_precision())
    if settings.mixed_precision == "fp16" and PartialState().device.type == "cpu":
        # accelerate would silently train in fp32 while the run records fp16
        raise UserError("`mixed_precision` fp16 needs a GPU: use 'bf16' or 'no' on the CPU")
    _release_precision(settings.mixed_precision)
    try:
        accelerator = Accelerator(mixed_precision=settings.mixed_precision)
    except ValueError as error:
        raise UserError(f"`mixed_precision` {settings.mixed_precision} is not available here ({error}): use 'no' or 'bf16'") from None
    run_dir = Path(settings.out_dir)
    resume_from = _resume_point(run_dir, settings.resume, accelerator)
    accelerator.wait_for_everyone()
    lock = None
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock(run_dir)
        changed = _changes(run_dir, settings) if resume_from is not None else []
        if changed and not settings.allow_changes:
            raise UserError(f"`resume` would change the run in {run_dir} ({'; '.join(changed)}): pass `allow_changes` to continue anyway")
        for line in changed:
            _warn(accelerator, f"resuming with a change: {line}")
        if resume_from is None or changed:
            checkpoints.write_json(run_dir / SETTINGS_FILE, json.loads(json.dumps({**asdict(settings), "out_dir": str(run_dir)}, default=str)))
    set_seed(settings.seed, device_specific=True)

    for module in task.frozen:
        module.to(accelerator.device).eval().requires_grad_(False)
    task.prepare(run_dir, accelerator.is_main_process)
    model = task.model
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    sampler = EpochPermutation(len(task.dataset), settings.seed)
    # Every iterator of a DataLoader draws its workers' base seed from `generator`, or else from the global RNG,
    # which the loss's noise comes from: a resumed run, restoring that RNG and then opening an iterator, would
    # draw other noise than the uninterrupted run.
    loader = DataLoader(
        task.dataset,
        batch_size=settings.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(settings.seed),
        num_workers=settings.num_workers,
        pin_memory=accelerator.device.type == "cuda",
    )
    # Each process's prepared scheduler advances num_processes times per step (accelerate), hence the scaling.
    lr_scheduler = get_scheduler(
        "constant_with_warmup" if settings.lr_schedule == "constant" and settings.warmup_steps else settings.lr_schedule,
        optimizer,
        num_warmup_steps=settings.warmup_steps * accelerator.num_processes,
        num_training_steps=settings.steps * accelerator.num_processes,
    )
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)
    _check_step_memory(task, model, accelerator, settings.batch_size)
    batches_per_epoch = len(loader)
    if batches_per_epoch == 0:
        raise UserError(
            f"the dataset has {len(task.dataset)} items, fewer than one batch of {settings.batch_size} per process x {accelerator.num_processes} processes: lower `batch_size`"
        )
    unwrapped = accelerator.unwrap_model(model)
    ema = EMAModel(unwrapped.parameters(), decay=settings.ema_decay) if settings.ema_decay else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    step = 0
    if resume_from is not None:
        step = checkpoints.checkpoint_step(resume_from)
        if step > settings.steps:
            raise UserError(f"the run in {run_dir} is already at step {step}, past `steps` {settings.steps}: pass a larger `steps`")
        try:
            accelerator.load_state(str(resume_from))
        except (OSError, RuntimeError, ValueError, KeyError, EOFError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"checkpoint {resume_from} cannot be loaded ({first_line}): delete it to resume from the one before, or check that `preset` matches the run") from error
        if accelerator.is_main_process:
            print(f"arbiscale: resuming from {resume_from} (step {step})", file=sys.stderr)
    if accelerator.is_main_process:
        _trim_metrics(run_dir / METRICS_FILE, step)  # a restart from step 0 drops every line of the attempt before
    accelerator.wait_for_everyone()

    def validate() -> dict[str, float]:
        metrics: dict[str, float] = {}
        if accelerator.is_main_process:
            if ema is not None:
                ema.store(unwrapped.parameters())
                ema.copy_to(unwrapped.parameters())
            unwrapped.eval()
            with torch.no_grad():
                metrics = task.validate(unwrapped)
            unwrapped.train()
            if ema is not None:
                ema.restore(unwrapped.parameters())
        accelerator.wait_for_everyone()
        return metrics

    progress = tqdm(total=settings.steps, initial=step, desc="training", disable=not accelerator.is_main_process, dynamic_ncols=True)
    sums: dict[str, float] = {}
    count = 0
    started = time.monotonic()
    epoch, skip = divmod(step, batches_per_epoch)
    with StopRequest() as stop:  # Ctrl-C, `kill`, `docker stop`: stop at the end of the step, checkpointed
        while step < settings.steps:
            loader.set_epoch(epoch)
            if hasattr(task.dataset, "set_epoch"):
                task.dataset.set_epoch(epoch)
            batches = accelerator.skip_first_batches(loader, skip) if skip else loader
            if skip:
                batches.set_epoch(epoch)
            skip = 0
            for batch in batches:
                with accelerator.autocast():
                    loss, parts = task.loss(model, batch)
                accelerator.backward(loss)
                if settings.grad_clip:
                    accelerator.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.step(unwrapped.parameters())
                step += 1
                count += 1
                for name, value in {"loss": loss.detach().float().item(), **parts}.items():
                    sums[name] = sums.get(name, 0.0) + float(value)
                progress.update(1)

                record: dict[str, float] = {}
                last = step == settings.steps
                if step % settings.log_every == 0 or last:
                    record.update(_mean_across_processes(accelerator, sums, count))
                    if not math.isfinite(record["loss"]):
                        raise UserError(f"the loss became {record['loss']} by step {step}: lower `lr` or use `mixed_precision` no")
                    record["lr"] = optimizer.param_groups[0]["lr"]
                    progress.set_postfix(loss=f"{record['loss']:.4f}")
                    sums, count = {}, 0
                if step % settings.validate_every == 0 or last:
                    record.update(validate())
                if record and accelerator.is_main_process:
                    line = {"step": step, **record, "elapsed_s": round(time.monotonic() - started, 2)}
                    with open(run_dir / METRICS_FILE, "a") as handle:
                        handle.write(json.dumps(line) + "\n")
                stopping = not last and _stop_agreed(accelerator, stop.requested)
                if step % settings.checkpoint_every == 0 or last or stopping:
                    _save_checkpoint(accelerator, run_dir, step, settings.keep_checkpoints)
                if stopping:
                    progress.close()
                    if accelerator.is_main_process:
                        print(f"arbiscale: stopped at step {step}, its checkpoint saved: `resume` continues from there", file=sys.stderr)
                    raise KeyboardInterrupt
                if step >= settings.steps:
                    break
            epoch += 1
    progress.close()

    model_dir = run_dir / MODEL_DIR
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(unwrapped.parameters())
        _save_model(task, unwrapped, run_dir)
    accelerator.wait_for_everyone()
    if lock is not None:
        lock.close()
    return model_dir
