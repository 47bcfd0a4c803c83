"""Several processes on this CPU, for real: torchrun with the gloo backend, and DeepSpeed ZeRO."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, run_cli


def _train(tmp_path, *extra: str):
    out = tmp_path / "run"
    overrides = [f"train.output_dir={out}", "train.max_steps=4", "train.logging_steps=1", *extra]
    result = run_cli(
        "train", "examples/quickstart.yaml", "distributed.nproc_per_node=2", *overrides, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def _losses(out):
    state = json.loads((out / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_two_processes_with_torchrun(tmp_path):
    out, result = _train(tmp_path, "distributed.master_port=29611")
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["world_size"] == 2
    assert (out / "adapter_model.safetensors").is_file()
    losses = _losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert result.stderr.count("saved adapter") == 1  # only rank 0 reports


@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_deepspeed_zero_on_cpu(tmp_path, preset):
    out, _ = _train(tmp_path, f"distributed.deepspeed={preset}", "distributed.master_port=29612")
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    assert (out / "adapter_model.safetensors").is_file()
    losses = _losses(out)
    assert losses[-1] < losses[0]


def test_user_error_is_exit_code_2_under_torchrun_too(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "examples/quickstart.yaml",
        "distributed.nproc_per_node=2",
        "data.train=demo_sftt",
        f"train.output_dir={out}",
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "dataset 'demo_sftt' is not in" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_data_is_tokenized_once_before_the_workers_start(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "examples/quickstart.yaml",
        "distributed.nproc_per_node=2",
        "train.max_steps=2",
        f"train.output_dir={out}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "distributed.master_port=29613",
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("cached the tokenized data") == 1
    assert "reusing tokenized data from the cache" in result.stderr
