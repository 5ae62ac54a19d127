"""A real `arbiscale train` process killed with SIGKILL mid-run resumes from its last checkpoint to the same final
step, with a loss history identical to a run that was never interrupted; a damaged newest checkpoint is
detected and the previous one used; SIGTERM stops at the end of a step with a checkpoint there. The killed process is forked from the test's (`fork_process`): a real
process without a fresh interpreter's imports."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from arbiscale.models.autoencoder import ImplicitAutoencoder
from arbiscale.models.loading import load_component
from arbiscale.training.checkpoints import checkpoint_step, list_checkpoints

STEPS = 50
KILL_AFTER = STEPS // 4  # kill once a checkpoint at least this far exists, with most of the run still to go
RUN = ("--checkpoint-every", "2", "--ema", "0.9")  # the run these tests interrupt (`tiny_train_argv` options)


def kill_after_a_checkpoint(process, run_dir: Path) -> int:
    """SIGKILL the training `process` as soon as a checkpoint at step >= KILL_AFTER is published; its step."""
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            published = list_checkpoints(run_dir)
            if published and checkpoint_step(published[-1]) >= KILL_AFTER:
                break
            assert process.is_alive(), "training ended before it could be killed"
            time.sleep(0.01)
        else:
            raise AssertionError("no checkpoint appeared in time")
        process.kill()
        process.join(timeout=60)
        assert process.exitcode == -signal.SIGKILL
    finally:
        if process.is_alive():
            process.kill()
            process.join()
    return checkpoint_step(list_checkpoints(run_dir)[-1])


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_component(ImplicitAutoencoder, model_dir).state_dict()


@pytest.mark.slow
def test_sigkill_then_resume_continues_the_run_and_a_damaged_checkpoint_falls_back(tmp_path, cli, fork_process, tiny_train_argv):
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    assert cli(*tiny_train_argv(reference_dir, STEPS, *RUN)).code == 0  # never interrupted
    reference = metrics(reference_dir)

    killed_at = kill_after_a_checkpoint(fork_process(tiny_train_argv(run_dir, STEPS, *RUN), tmp_path / "killed.log"), run_dir)
    assert KILL_AFTER <= killed_at < STEPS
    assert not (run_dir / "model").exists()
    # lines up to the checkpoint are whole (a step is logged before it is checkpointed); a later one may be cut
    logged = (run_dir / "metrics.jsonl").read_text().splitlines()[:killed_at]
    assert [json.loads(line)["step"] for line in logged] == list(range(1, killed_at + 1))

    outcome = cli(*tiny_train_argv(run_dir, STEPS, *RUN, "--resume"))
    assert outcome.code == 0 and f"(step {killed_at})" in outcome.err and "warning" not in outcome.err
    history = metrics(run_dir)
    assert [line["step"] for line in history] == list(range(1, STEPS + 1))  # increasing, no step twice, ends at STEPS
    for line, expected in zip(history, reference):
        assert line["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-7), line["step"]
    assert history[-1]["val_psnr"] == pytest.approx(reference[-1]["val_psnr"], abs=1e-4)
    resumed, uninterrupted = weights(run_dir / "model"), weights(reference_dir / "model")
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        assert torch.allclose(resumed[name], tensor, atol=1e-5), name
    assert not list(run_dir.rglob(".tmp-*")) and not list(run_dir.rglob(".old-*"))  # no half-written leftovers

    # Damage the newest checkpoint: resuming warns once and replays from the one before.
    previous, newest = list_checkpoints(run_dir)
    previous_step = checkpoint_step(previous)
    damaged = newest / "model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    outcome = cli(*tiny_train_argv(run_dir, STEPS + 2, *RUN, "--resume"))
    assert outcome.code == 0
    stderr = outcome.err
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and newest.name in warnings[0] and "model.safetensors" in warnings[0]
    assert f"(step {previous_step})" in stderr
    history = metrics(run_dir)
    assert [line["step"] for line in history] == list(range(1, STEPS + 3))
    for line, expected in zip(history[STEPS - 2 : STEPS], reference[STEPS - 2 : STEPS]):  # the replayed steps
        assert line["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-7), line["step"]
    assert [checkpoint_step(path) for path in list_checkpoints(run_dir)] == [STEPS, STEPS + 2]
    assert weights(run_dir / "model")


@pytest.mark.slow
def test_sigterm_between_checkpoints_saves_one_and_resume_replays_the_run(tmp_path, cli, fork_process, tiny_train_argv):
    """`kill`, systemd, `docker stop` (SIGTERM) and Ctrl-C stop at the end of the step with a checkpoint there,
    so a run with rare checkpoints loses nothing."""
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    assert cli(*tiny_train_argv(reference_dir, STEPS, *RUN)).code == 0
    log = tmp_path / "stopped.log"
    process = fork_process(tiny_train_argv(run_dir, STEPS, *RUN, "--checkpoint-every", "1000"), log)
    deadline = time.monotonic() + 300
    while not ((run_dir / "metrics.jsonl").exists() and len((run_dir / "metrics.jsonl").read_text().splitlines()) >= KILL_AFTER):
        assert process.is_alive() and time.monotonic() < deadline, "training ended before it could be stopped"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGTERM)
    process.join(timeout=120)
    assert process.exitcode == 130, log.read_text()[-2000:]
    [checkpoint] = list_checkpoints(run_dir)
    stopped_at = checkpoint_step(checkpoint)
    assert KILL_AFTER <= stopped_at < STEPS and f"stopped at step {stopped_at}" in log.read_text()
    outcome = cli(*tiny_train_argv(run_dir, STEPS, *RUN, "--checkpoint-every", "1000", "--resume"))
    assert outcome.code == 0 and f"(step {stopped_at})" in outcome.err
    history, reference = metrics(run_dir), metrics(reference_dir)
    assert [line["step"] for line in history] == list(range(1, STEPS + 1))
    for line, expected in zip(history, reference):
        assert line["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-7), line["step"]


@pytest.mark.skipif(os.environ.get("ARBISCALE_STRESS") != "1", reason="about 2 minutes: run with ARBISCALE_STRESS=1")
def test_twenty_sigkills_at_random_moments_never_leave_a_run_resume_cannot_finish(tmp_path, cli, fork_process, tiny_train_argv):
    """SIGKILL 20 times, each at a random moment of a resumed run (start-up, a step, a checkpoint write: with a
    checkpoint every step most kills land in or near one); the run still resumes to the same final step with
    the loss history and weights of a run that was never interrupted."""
    import random

    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    steps = 300
    assert cli(*tiny_train_argv(reference_dir, steps, *RUN, "--checkpoint-every", "1")).code == 0
    chance = random.Random(0)
    during_a_write = 0
    for attempt in range(20):
        process = fork_process(tiny_train_argv(run_dir, steps, *RUN, "--checkpoint-every", "1", "--resume"), tmp_path / f"attempt-{attempt}.log")
        time.sleep(chance.uniform(0.2, 2.5))  # a forked start-up takes a fraction of a second, a step and its checkpoint about 0.1 s
        if attempt % 2:  # every other kill waits for a checkpoint being assembled and strikes then
            deadline = time.monotonic() + 5
            while not list(run_dir.glob("checkpoints/.tmp-*")) and time.monotonic() < deadline and process.is_alive():
                time.sleep(0.0005)
        during_a_write += bool(list(run_dir.glob("checkpoints/.tmp-*")))
        process.kill()
        process.join(timeout=60)
    outcome = cli(*tiny_train_argv(run_dir, steps, *RUN, "--checkpoint-every", "1", "--resume"))
    history, reference = metrics(run_dir), metrics(reference_dir)
    assert outcome.code == 0 and [line["step"] for line in history] == list(range(1, steps + 1)), outcome.err
    for line, expected in zip(history, reference):
        assert line["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-7), line["step"]
    resumed, uninterrupted = weights(run_dir / "model"), weights(reference_dir / "model")
    for name, tensor in uninterrupted.items():
        assert torch.allclose(resumed[name], tensor, atol=1e-5), name
    print(f"{during_a_write} of 20 kills struck while a checkpoint was being written")
    assert during_a_write >= 5
