from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.utils import set_seed
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from safetensors.torch import load_file
from torch.utils.data import Dataset

from arbiscale.data.crops import ArbitraryScaleCrops, item_generator
from arbiscale.data.images import list_images
from arbiscale.errors import UserError
from arbiscale.models.autoencoder import ImplicitAutoencoder
from arbiscale.models.loading import load_component
from arbiscale.presets import get_preset
from arbiscale.training.autoencoder import AutoencoderTask, validation_crops
from arbiscale.training.checkpoints import list_checkpoints
from arbiscale.training.loop import MEMORY_PROBE_ITEMS, TrainingTask, TrainSettings, train


def metric_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- the loop with a task that is not the autoencoder: the interface later stages implement ------------


class TinyConv(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class BlurPairs(Dataset):
    """x -> a fixed 3x3 box blur of x: a regression a 3x3 conv can learn exactly."""

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        x = torch.randn(3, 8, 8, generator=item_generator(self.seed, self.epoch, index))
        blurred = torch.nn.functional.avg_pool2d(x.unsqueeze(0), 3, stride=1, padding=1, count_include_pad=False)[0]
        return {"x": x, "y": blurred}


class BlurTask(TrainingTask):
    def __init__(self) -> None:
        self.model = TinyConv()
        self.dataset = BlurPairs(32, seed=0)
        self.frozen = [torch.nn.Linear(2, 2)]
        self.validation = BlurPairs(4, seed=99)

    def loss(self, model, batch):
        return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"]), {}

    def validate(self, model):
        assert not model.training and not torch.is_grad_enabled()
        batch = [self.validation[i] for i in range(4)]
        x, y = torch.stack([b["x"] for b in batch]), torch.stack([b["y"] for b in batch])
        return {"val_mse": torch.nn.functional.mse_loss(model(x), y).item()}


def test_a_generic_task_learns_logs_and_saves(tmp_path):
    set_seed(0)
    task = BlurTask()
    settings = TrainSettings(out_dir=tmp_path / "run", steps=150, batch_size=4, lr=0.02, log_every=10, validate_every=50, checkpoint_every=100)
    model_dir = train(task, settings)
    lines = metric_lines(tmp_path / "run")
    assert [line["step"] for line in lines] == list(range(10, 151, 10))
    assert all(line["lr"] == 0.02 for line in lines)
    assert [line["step"] for line in lines if "val_mse" in line] == [50, 100, 150]
    assert lines[-1]["loss"] < lines[0]["loss"] / 10
    assert lines[-1]["val_mse"] < 0.01
    assert not any(p.requires_grad for p in task.frozen[0].parameters())
    loaded = load_component(TinyConv, model_dir)
    assert torch.equal(loaded.conv.weight, task.model.conv.weight)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-0000100", "step-0000150"]


def test_ema_weights_are_what_gets_saved(tmp_path):
    set_seed(0)
    task = BlurTask()
    model_dir = train(task, TrainSettings(out_dir=tmp_path / "run", steps=20, batch_size=4, lr=0.02, ema_decay=0.9, log_every=10, validate_every=100, checkpoint_every=100))
    saved = load_component(TinyConv, model_dir).conv.weight
    checkpoint = list_checkpoints(tmp_path / "run")[-1]
    raw = load_file(checkpoint / "model.safetensors")["conv.weight"]
    average = torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"][0]
    assert torch.equal(saved, average)
    assert not torch.allclose(saved, raw, atol=1e-4)  # the average lags the raw weights


def test_trainings_in_one_process_each_run_in_their_own_precision(tmp_path):
    """accelerate keeps one precision per process; a notebook training twice must not be refused."""
    seen = []
    for precision in ("bf16", "no", "bf16"):
        seen.append(set())
        task = BlurTask()
        task.model.conv.register_forward_hook(lambda module, args, out: seen[-1].add(out.dtype))  # inside accelerate's fp32 output cast
        run = tmp_path / f"run-{len(seen)}"
        train(task, TrainSettings(out_dir=run, steps=3, batch_size=4, lr=0.02, mixed_precision=precision, log_every=1, validate_every=100, checkpoint_every=100))
        assert json.loads((run / "settings.json").read_text())["mixed_precision"] == precision
    assert seen == [{torch.bfloat16}, {torch.float32}, {torch.bfloat16}]


# --- run folders, checkpoints and resuming (the autoencoder task, tiny preset) -------------------------


class CrashingAutoencoderTask(AutoencoderTask):
    """Dies (as if killed) when asked for the loss of step `crash_at`."""

    def __init__(self, *args, crash_at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.crash_at = 0, crash_at

    def loss(self, model, batch):
        self.calls += 1
        if self.calls == self.crash_at + len(MEMORY_PROBE_ITEMS):  # after the memory check's forwards
            raise RuntimeError("simulated crash")
        return super().loss(model, batch)


def autoencoder_task(photo_dir: Path, init_seed: int, crash_at: int | None = None) -> AutoencoderTask:
    set_seed(init_seed)
    preset = get_preset("tiny")
    autoencoder = ImplicitAutoencoder(**preset.autoencoder)
    paths = list_images(photo_dir)
    dataset = ArbitraryScaleCrops(paths, preset.latent_size, autoencoder.downsample_factor, length=16, seed=0)
    validation = validation_crops(paths, preset.latent_size, autoencoder.downsample_factor, count=2)
    if crash_at is None:
        return AutoencoderTask(autoencoder, dataset, validation)
    return CrashingAutoencoderTask(autoencoder, dataset, validation, crash_at=crash_at)


def settings(run_dir: Path, steps: int, resume: bool = False) -> TrainSettings:
    return TrainSettings(out_dir=run_dir, steps=steps, batch_size=4, lr=1e-3, ema_decay=0.9, log_every=1, validate_every=4, checkpoint_every=3, resume=resume)


def state(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_component(ImplicitAutoencoder, model_dir).state_dict()


def test_resume_after_a_crash_replays_the_uninterrupted_run(tmp_path, photo_dir, capsys):
    reference_dir = train(autoencoder_task(photo_dir, init_seed=0), settings(tmp_path / "reference", 8))

    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(autoencoder_task(photo_dir, init_seed=0, crash_at=8), settings(run_dir, 8))
    assert [line["step"] for line in metric_lines(run_dir)] == [1, 2, 3, 4, 5, 6, 7]
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-0000003", "step-0000006"]
    assert not (run_dir / "model").exists()

    # Another initial seed: the resumed weights must come from the checkpoint, not from the fresh model.
    train(autoencoder_task(photo_dir, init_seed=123), settings(run_dir, 8, resume=True))
    assert "step 6" in capsys.readouterr().err
    lines, reference_lines = metric_lines(run_dir), metric_lines(tmp_path / "reference")
    assert [line["step"] for line in lines] == list(range(1, 9))  # step 7 logged once, not twice
    for line, expected in zip(lines, reference_lines):
        assert line["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-7)
    assert lines[-1]["val_psnr"] == pytest.approx(reference_lines[-1]["val_psnr"], abs=1e-4)
    resumed, reference = state(run_dir / "model"), state(reference_dir)
    for name, tensor in reference.items():
        assert torch.allclose(resumed[name], tensor, atol=1e-6), name


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, photo_dir, capsys):
    run_dir = tmp_path / "run"
    train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 6))
    newest = list_checkpoints(run_dir)[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 7, resume=True))
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "step-0000006" in warnings[0] and "model.safetensors" in warnings[0]
    assert "step 3" in err
    assert [line["step"] for line in metric_lines(run_dir)] == list(range(1, 8))
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-0000006", "step-0000007"]  # the damaged one was replaced
    assert state(run_dir / "model")


def test_a_non_empty_run_folder_is_not_touched_without_resume(tmp_path, photo_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="`resume`"):
        train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 2))
    assert [p.name for p in run_dir.iterdir()] == ["notes.txt"]
    with pytest.raises(UserError, match="no intact checkpoint"):
        train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 2, resume=True))
    assert [p.name for p in run_dir.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_two_cpu_processes_train_resume_and_save(tmp_path, photo_dir, run_ranks, quick_train):
    run_dir = tmp_path / "run"

    def launch(steps: int, *extra: str) -> None:
        run_ranks(*quick_train("autoencoder", photo_dir, run_dir, "--steps", steps, "--validate-every", 4, *extra))

    launch(4)
    newest = list_checkpoints(run_dir)[-1]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in newest.iterdir()}  # two processes ran
    launch(6, "--resume")
    assert [line["step"] for line in metric_lines(run_dir)] == [2, 4, 6]
    assert "val_psnr" in metric_lines(run_dir)[-1]
    assert json.loads((run_dir / "settings.json").read_text())["steps"] == 4
    assert load_component(ImplicitAutoencoder, run_dir / "model")


def test_resuming_refuses_a_different_model_or_fewer_steps(tmp_path, photo_dir):
    run_dir = tmp_path / "run"
    train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 3))
    with pytest.raises(UserError, match="past `steps` 2"):
        train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 2, resume=True))
    other = autoencoder_task(photo_dir, init_seed=0)
    other.model = type(other.model)(ImplicitAutoencoder(**{**get_preset("tiny").autoencoder, "base_channels": 8}))
    with pytest.raises(UserError, match="cannot be loaded") as excinfo:
        train(other, settings(run_dir, 4, resume=True))
    assert "\n" not in str(excinfo.value)


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(tmp_path, photo_dir, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(autoencoder_task(photo_dir, init_seed=0, crash_at=2), settings(run_dir, 8))
    assert not list_checkpoints(run_dir) and [line["step"] for line in metric_lines(run_dir)] == [1]
    train(autoencoder_task(photo_dir, init_seed=0), settings(run_dir, 4, resume=True))
    assert "stopped before its first checkpoint" in capsys.readouterr().err
    assert [line["step"] for line in metric_lines(run_dir)] == [1, 2, 3, 4]  # the attempt's line is gone, not doubled
