"""Crash safety with real kills: a training run SIGKILLed mid-step and mid-checkpoint, an export and a
tokenized-data cache write SIGKILLed half-way, and Ctrl-C. After each, nothing partial passes for
complete, leftovers are removed (and said so), and resuming gives exactly the uninterrupted run's adapter.

Each process is stopped at an exact point by tests/pause_at.py (the function named there waits), then
killed for real."""

from __future__ import annotations

import hashlib
import json
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_DATA, run_cli
from tests.pause_at import kill, start_paused

STEPS, SAVE_EVERY = 12, 4


def write_recipe(work: Path, base: Path, name: str = "recipe.yaml", **train: object) -> Path:
    """A from-scratch LoRA run (its random base is saved with it), with dropout so that resuming must
    restore the random state too."""
    recipe = {
        "stage": "sft",
        "model": {"name_or_path": str(base), "template": "chatml", "from_scratch": True},
        "adapter": {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.1},
        "data": {
            "dataset_dir": str(TEST_DATA),
            "train": "qa",
            "max_length": 64,
            "cache_dir": str(work / "cache"),
        },
        "train": {
            "output_dir": str(work / "run"),
            "max_steps": STEPS,
            "per_device_train_batch_size": 4,
            "learning_rate": 1.0e-2,
            "logging_steps": 1,
            "save_steps": SAVE_EVERY,
            **train,
        },
    }
    path = work / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def adapter(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter_model.safetensors"))


def assert_same_adapter(run: Path, reference: Path) -> None:
    import torch

    got, expected = adapter(run), adapter(reference)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_ok(recipe: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = run_cli("train", str(recipe), *overrides)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir) -> Path:
    work = tmp_path_factory.mktemp("whole")
    train_ok(write_recipe(work, tiny_model_dir))
    return work / "run"


def killed_training(work: Path, recipe: Path, target: str, calls: int) -> subprocess.Popen:
    """`ftkit train RECIPE` SIGKILLed when `target` is called for the `calls`th time."""
    process = start_paused(work, target, calls, "before", "train", str(recipe))
    kill(process)
    return process


def test_kill_mid_step_then_resume_latest(tmp_path, tiny_model_dir, uninterrupted):
    recipe = write_recipe(tmp_path, tiny_model_dir)
    run = tmp_path / "run"
    process = killed_training(tmp_path, recipe, "transformers.trainer:Trainer.training_step", 7)
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    assert not (run / "adapter_model.safetensors").exists()
    base = digest(run / "base_model" / "model.safetensors")

    shown = run_cli("check", str(recipe), "-q", "train.resume_from_checkpoint=latest")
    assert shown.returncode == 0, shown.stderr
    assert (
        f"holds a killed run (its process {process.pid} is gone), last complete checkpoint checkpoint-4"
        in shown.stdout
    )
    refused = run_cli("train", str(recipe))  # without resume: the run's checkpoints are not thrown away
    assert refused.returncode == 2
    assert (
        "holds a killed run with checkpoints up to checkpoint-4; continue it with train.resume_from_checkpoint=latest"
        in refused.stderr
    )

    result = train_ok(recipe, "train.resume_from_checkpoint=latest")
    assert "resuming from" in result.stderr and "checkpoint-4" in result.stderr
    assert "loading the base the run saved" in result.stderr
    assert digest(run / "base_model" / "model.safetensors") == base  # reused, never rebuilt
    run_record = json.loads((run / "run.json").read_text())
    assert run_record["status"] == "completed" and run_record["resumed_from"].endswith("checkpoint-4")
    assert_same_adapter(run, uninterrupted)


def test_kill_mid_checkpoint_save(tmp_path, tiny_model_dir, uninterrupted):
    recipe = write_recipe(tmp_path, tiny_model_dir)
    run = tmp_path / "run"
    # checkpoint-8's weights and optimizer are written; its trainer state (written last) is not.
    killed_training(tmp_path, recipe, "transformers.trainer:Trainer._save_rng_state", 2)
    assert (run / "checkpoint-8" / "optimizer.pt").is_file()
    assert not (run / "checkpoint-8" / "trainer_state.json").exists()

    result = train_ok(recipe, "train.resume_from_checkpoint=latest")
    assert "checkpoint-4" in result.stderr and "resuming from" in result.stderr
    assert "removing" in result.stderr and "checkpoint-8" in result.stderr  # the cut-short one, reported
    assert json.loads((run / "run.json").read_text())["resumed_from"].endswith("checkpoint-4")
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [
        "checkpoint-12",
        "checkpoint-4",
        "checkpoint-8",
    ]
    assert (run / "checkpoint-8" / "trainer_state.json").is_file()  # written again, whole
    assert_same_adapter(run, uninterrupted)


def test_kill_mid_export(tmp_path, uninterrupted):
    clean = tmp_path / "clean"
    assert run_cli("export", "--adapter", str(uninterrupted), "--out", str(clean)).returncode == 0
    target = tmp_path / "merged"
    process = start_paused(
        tmp_path,
        "ftkit.merge:_merged",
        3,
        "before",
        "export",
        "--adapter",
        str(uninterrupted),
        "--out",
        str(target),
    )
    kill(process)
    assert not target.exists()  # nothing that looks like an export
    [leftover] = tmp_path.glob(".merged.tmp-*")

    result = run_cli("export", "--adapter", str(uninterrupted), "--out", str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"removing {leftover}" in result.stderr
    assert not leftover.exists()
    assert digest(target / "model.safetensors") == digest(clean / "model.safetensors")


def test_kill_mid_cache_write(tmp_path, tiny_model_dir, uninterrupted):
    recipe = write_recipe(tmp_path, tiny_model_dir)
    process = start_paused(
        tmp_path, "datasets.arrow_dataset:Dataset.save_to_disk", 1, "after", "train", str(recipe)
    )
    kill(process)
    cache = tmp_path / "cache"
    [leftover] = [p for p in cache.iterdir() if ".tmp-" in p.name]
    assert not [p for p in cache.iterdir() if not p.name.startswith(".")]  # no entry that looks complete
    assert not (tmp_path / "run").exists()  # the run had written nothing yet

    result = train_ok(recipe, "train.resume_from_checkpoint=latest")
    assert "holds no run yet; starting a new run" in result.stderr
    assert "train data (tokenized)" in result.stderr  # not taken from the partial entry
    assert f"removing {leftover}" in result.stderr and not leftover.exists()
    assert_same_adapter(tmp_path / "run", uninterrupted)


def test_ctrl_c_exits_130_and_prints_the_resume_command(tmp_path, tiny_model_dir, uninterrupted):
    recipe = write_recipe(tmp_path, tiny_model_dir)
    process = start_paused(
        tmp_path, "transformers.trainer:Trainer.training_step", 7, "before", "train", str(recipe)
    )
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"
    line = next(line for line in stderr.splitlines() if "Resume it with: " in line)
    assert "saved up to checkpoint-4" in line
    command = shlex.split(line.split("Resume it with: ", 1)[1])
    assert command == ["ftkit", "train", str(recipe), "train.resume_from_checkpoint=latest"]
    train_ok(*[Path(command[2]), *command[3:]])
    assert_same_adapter(tmp_path / "run", uninterrupted)
