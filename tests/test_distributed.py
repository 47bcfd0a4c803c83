"""Several processes on this CPU, for real: torchrun with the gloo backend, and DeepSpeed ZeRO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import _OFFLINE, ROOT, run_cli


def _train(tmp_path, *extra: str):
    out = tmp_path / "run"
    overrides = [f"train.output_dir={out}", "train.max_steps=4", "train.logging_steps=1", *extra]
    result = run_cli(
        "train", "examples/quickstart.yaml", "distributed.nproc_per_node=2", *overrides, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def _start(*args: str, **popen: object) -> subprocess.Popen:
    """`ftkit ...` in the background, as a user starts it (offline, from the checkout)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ftkit", *args],
        cwd=ROOT,
        env={**os.environ, **_OFFLINE},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


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


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The quickstart's first 4 steps in one process with the global batch (16) of 2 x 8."""
    out = tmp_path_factory.mktemp("one") / "run"
    overrides = [f"train.output_dir={out}", "train.max_steps=4", "train.logging_steps=1"]
    result = run_cli("train", "examples/quickstart.yaml", *overrides, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _same_tensors(saved, reference) -> None:
    """Every saved tensor is complete (its full shape) and equals the one-process run's."""
    from safetensors.torch import load_file

    mine, theirs = load_file(str(saved)), load_file(str(reference))
    assert sorted(mine) == sorted(theirs)
    for name, tensor in theirs.items():
        assert mine[name].shape == tensor.shape, name
        torch.testing.assert_close(mine[name], tensor, rtol=1e-3, atol=2e-5, msg=name)


@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_deepspeed_zero_on_cpu(tmp_path, preset, one_process):
    out, _ = _train(
        tmp_path,
        f"distributed.deepspeed={preset}",
        "distributed.master_port=29612",
        "train.per_device_train_batch_size=8",
    )
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    losses = _losses(out)
    assert losses[-1] < losses[0]
    reference = one_process
    if preset == "zero3":
        # ZeRO-3 builds the model partitioned, so its random initialization is its own: the reference is
        # ZeRO-3 in one process (which also shows DeepSpeed runs without a second process).
        reference = tmp_path / "one"
        single = run_cli(
            "train",
            "examples/quickstart.yaml",
            f"train.output_dir={reference}",
            "train.max_steps=4",
            "train.logging_steps=1",
            "distributed.deepspeed=zero3",
            "distributed.master_port=29616",
            cwd=ROOT,
        )
        assert single.returncode == 0, single.stderr[-3000:]
    # The adapter is gathered from the shards: complete, and what one process trains.
    _same_tensors(out / "adapter_model.safetensors", reference / "adapter_model.safetensors")


@pytest.mark.parametrize("strategy", ["full_shard", "shard_grad_op"])
def test_fsdp_lora_saves_the_whole_trained_adapter(tmp_path, strategy, one_process):
    out, result = _train(
        tmp_path,
        f"distributed.fsdp={strategy}",
        "distributed.master_port=29614",
        "train.per_device_train_batch_size=8",
    )
    assert _losses(out) == pytest.approx(_losses(one_process), rel=1e-4)
    _same_tensors(out / "adapter_model.safetensors", one_process / "adapter_model.safetensors")
    assert result.stderr.count("saved adapter") == 1


def test_fsdp_full_fine_tuning_saves_a_model_plain_transformers_loads(tmp_path):
    import yaml
    from transformers import AutoModelForCausalLM

    recipe = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    recipe["adapter"] = {"type": "full"}
    recipe["train"]["learning_rate"] = 1e-3
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(recipe))
    common = ["train.max_steps=3", "train.logging_steps=1", "data.eval=[]"]
    one = run_cli("train", str(path), f"train.output_dir={tmp_path / 'one'}", *common, cwd=ROOT)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(
        "train",
        str(path),
        "--nproc",
        "2",
        f"train.output_dir={tmp_path / 'two'}",
        "train.per_device_train_batch_size=8",
        "distributed.fsdp=full_shard",
        "distributed.master_port=29615",
        *common,
        cwd=ROOT,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    _same_tensors(tmp_path / "two" / "model.safetensors", tmp_path / "one" / "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "two")
    reference = AutoModelForCausalLM.from_pretrained(tmp_path / "one")
    ids = torch.tensor([[5, 9, 13, 21, 34]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-3, atol=1e-4)


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


def test_nproc_flag_trains_like_one_process_with_the_same_global_batch(tmp_path):
    """`--nproc 2` with 8 examples per process = one process with 16: the same examples in each step."""
    common = ["train.max_steps=3", "train.logging_steps=1", "data.eval=[]", "data.cache=false"]
    one = run_cli(
        "train", "examples/quickstart.yaml", f"train.output_dir={tmp_path / 'one'}", *common, cwd=ROOT
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(
        "train",
        "examples/quickstart.yaml",
        "--nproc",
        "2",
        f"train.output_dir={tmp_path / 'two'}",
        "train.per_device_train_batch_size=8",
        "distributed.master_port=29621",
        *common,
        cwd=ROOT,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["world_size"] == 2
    # float32 sums in another order (two shorter padded batches, gradients averaged by all-reduce)
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    assert two.stderr.count("saved adapter") == 1  # outputs written once, by rank 0


def test_two_nodes_on_one_machine_train_together(tmp_path):
    """nnodes 2, one process each: two `ftkit train` commands, node_rank 0 and 1, meet and finish."""
    out = tmp_path / "run"
    command = [
        "train",
        "examples/quickstart.yaml",
        f"train.output_dir={out}",
        "train.max_steps=2",
        "train.logging_steps=1",
        "data.eval=[]",
        "distributed.nnodes=2",
        "distributed.master_addr=127.0.0.1",
        "distributed.master_port=29622",
        "distributed.rendezvous_timeout=120",
    ]
    nodes = [_start(*command, f"distributed.node_rank={rank}") for rank in (0, 1)]
    results = [node.communicate(timeout=600) for node in nodes]
    for node, (_, stderr) in zip(nodes, results, strict=True):
        assert node.returncode == 0, stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["world_size"] == 2
    assert len(_losses(out)) == 2
    assert "node 0 of 2" in results[0][1] and "node 1 of 2" in results[1][1]


def test_nodes_that_never_meet_stop_with_the_address_not_a_hang(tmp_path):
    result = run_cli(
        "train",
        "examples/quickstart.yaml",
        f"train.output_dir={tmp_path / 'run'}",
        "distributed.nnodes=2",
        "distributed.master_port=29623",
        "distributed.rendezvous_timeout=3",
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "did not meet at 127.0.0.1:29623 within distributed.rendezvous_timeout=3s" in message
    assert "port 29623 is open" in message and "Traceback" not in result.stderr


def test_slurm_example_starts_one_ftkit_per_node_with_its_rank(tmp_path):
    """examples/slurm/ftkit.sbatch under stand-ins for srun (two nodes, here) and scontrol."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "scontrol").write_text("#!/bin/bash\necho 127.0.0.1\necho node2\n")
    # srun: one task per node, in parallel, each with its SLURM_NODEID; fails if any task fails.
    (stubs / "srun").write_text(
        "#!/bin/bash\n"
        'while [[ "$1" == --* ]]; do shift; done\n'
        "pids=()\n"
        'for ((node = 0; node < SLURM_NNODES; node++)); do SLURM_NODEID=$node "$@" & pids+=($!); done\n'
        'status=0; for pid in "${pids[@]}"; do wait "$pid" || status=1; done; exit $status\n'
    )
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    out = tmp_path / "run"
    env = {
        **os.environ,
        **_OFFLINE,
        "PATH": f"{stubs}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "node[1-2]",
        "MASTER_PORT": "29625",
    }
    result = subprocess.run(
        [
            "bash",
            "examples/slurm/ftkit.sbatch",
            "examples/quickstart.yaml",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "data.eval=[]",
            "distributed.rendezvous_timeout=120",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "node 0 of 2" in result.stderr and "node 1 of 2" in result.stderr
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


def test_check_shows_the_processes_nodes_and_global_batch(capsys):
    from ftkit.cli import main

    overrides = [
        "distributed.nnodes=2",
        "distributed.node_rank=1",
        "distributed.nproc_per_node=4",
        "distributed.master_addr=10.0.0.1",
        "distributed.fsdp=full_shard",
    ]
    assert main(["check", str(ROOT / "examples" / "quickstart.yaml"), "-q", *overrides]) == 0
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "4 per node on 2 nodes meeting at 10.0.0.1:29500, this is node 1, FSDP full_shard" in text
    assert "16 per process (global 128 over 8 processes)" in text


def test_ctrl_c_stops_every_process_and_says_so_once(tmp_path):
    """A terminal's Ctrl-C reaches the launcher and its workers: exit 130, one message, nobody left."""
    import signal
    import time

    out = tmp_path / "run"
    launcher = _start(
        "train",
        "examples/quickstart.yaml",
        "--nproc",
        "2",
        f"train.output_dir={out}",
        "train.max_steps=100000",
        "train.save_strategy=steps",
        "train.save_steps=2",
        "distributed.master_port=29626",
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    from ftkit.rundir import inspect_run_dir

    def saved() -> bool:  # a finished checkpoint, not one still being written
        return out.is_dir() and inspect_run_dir(out).latest is not None

    deadline = time.monotonic() + 300
    while not saved() and time.monotonic() < deadline and launcher.poll() is None:
        time.sleep(0.5)
    assert saved(), "no checkpoint was written"
    os.killpg(launcher.pid, signal.SIGINT)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 130, stderr[-3000:]
    assert stderr.count("interrupted; the run in") == 1, stderr[-1500:]
    assert "train.resume_from_checkpoint=latest" in stderr
    alive = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert alive == []
