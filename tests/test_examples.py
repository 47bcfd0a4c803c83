"""Every example in examples/ shows its method working, as a user runs it from a checkout: the signal the
run records (run.json's summary) improves, the console is quiet and ends with the summary block, and
the quickstart evaluates on rows it never trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A working directory laid out like the repository (data/, examples/), with its own outputs/."""
    work = tmp_path_factory.mktemp("checkout")
    for name in ("data", "examples"):
        (work / name).symlink_to(ROOT / name)
    return work


def train(checkout: Path, recipe: str, *overrides: str):
    result = run_cli(
        "train", f"examples/{recipe}", f"data.cache_dir={checkout / 'cache'}", *overrides, cwd=checkout
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def summary(checkout: Path, run: str) -> dict:
    return json.loads((checkout / "outputs" / run / "run.json").read_text())["summary"]


@pytest.fixture(scope="module")
def quickstart(checkout) -> str:
    return train(checkout, "quickstart.yaml").stderr


def test_quickstart_learns_and_ends_with_a_summary(checkout, quickstart):
    run = summary(checkout, "quickstart")
    assert run["signal"] == "loss" and run["last"] < 0.1 * run["first"]
    assert run["evaluation"]["eval_loss"] > 0 and run["tokens"] > 0
    block = quickstart[quickstart.index("run summary") :]
    for shown in (
        "loss ",
        " -> ",
        "evaluation",
        "tokens/s",
        "adapter_model.safetensors",
        "loss.png",
        "run.json",
    ):
        assert shown in block, shown
    assert "next        ftkit export examples/quickstart.yaml" in block
    assert "ftkit eval examples/quickstart.yaml" in block
    # Quiet: no DeepSpeed notice, no library progress bars, no raw metric dicts.
    assert (
        "Setting accelerator" not in quickstart
        and "examples/s" not in quickstart
        and "it/s]" not in quickstart
    )
    assert "entropy" not in quickstart and "train_samples_per_second" not in quickstart
    card = (checkout / "outputs" / "quickstart" / "README.md").read_text()
    assert "More Information Needed" not in card and "demo_sft" in card and "## Results" in card


def test_quickstart_evaluates_on_held_out_rows(checkout, quickstart):
    result = run_cli("eval", "examples/quickstart.yaml", f"data.cache_dir={checkout / 'cache'}", cwd=checkout)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((checkout / "outputs" / "quickstart" / "eval_results.json").read_text())
    assert results["examples"] == 20 and {"loss", "numeric_match"} <= set(results["fine_tuned"])
    assert "not held-out" not in result.stderr
    # Held out now from the rows the run trained on: warned, not silently scored.
    result = run_cli(
        "eval",
        "examples/quickstart.yaml",
        "data.eval=null",
        "data.val_size=20",
        "eval.metrics=[loss]",
        f"data.cache_dir={checkout / 'cache'}",
        cwd=checkout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 of 20 eval examples ask what the run trained on" in result.stderr


def test_pretraining_demo_lowers_the_loss(checkout):
    train(checkout, "pt_from_scratch.yaml")
    run = summary(checkout, "pt-from-scratch")
    assert run["last"] < 0.7 * run["first"]


def test_streamed_pretraining_learns_and_counts_its_mixture(checkout):
    train(checkout, "pt_streaming.yaml")
    run = summary(checkout, "pt-streaming")
    assert run["last"] < 0.7 * run["first"]
    data = json.loads((checkout / "outputs" / "pt-streaming" / "run.json").read_text())["data"]
    used = {d["name"]: d["used"] for d in data["datasets"]}
    assert used["demo_text"] > used["demo_sft"] > 0
    assert data["splits"]["train"]["examples"] == 60 * 8  # blocks of max_length tokens


def test_dpo_demo_widens_the_margin(checkout, quickstart):
    train(checkout, "dpo_demo.yaml")
    run = summary(checkout, "dpo-demo")
    assert run["signal"] == "rewards/margins" and run["first"] == 0 and run["last"] > 0.3


@pytest.mark.parametrize("stage", ["kto", "orpo", "simpo"])
def test_preference_demos_widen_the_margin(checkout, quickstart, stage):
    train(checkout, f"{stage}_demo.yaml")
    run = summary(checkout, f"{stage}-demo")
    assert run["signal"] == "rewards/margins" and run["last"] > run["first"] + 0.05, run


def test_reward_model_demo_ranks_its_pairs(checkout, quickstart):
    exported = run_cli("export", "examples/quickstart.yaml", cwd=checkout)
    assert exported.returncode == 0, exported.stderr[-3000:]
    train(checkout, "rm_demo.yaml")
    run = summary(checkout, "rm-demo")
    assert run["signal"] == "accuracy" and run["last"] > 0.75
    result = run_cli("eval", "examples/rm_demo.yaml", "--compare-base", cwd=checkout)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((checkout / "outputs/rm-demo/eval_results.json").read_text())
    assert scores["fine_tuned"]["reward_accuracy"] > 0.75 > scores["base"]["reward_accuracy"]


def test_grpo_demo_raises_the_reward(checkout, quickstart):
    result = train(checkout, "grpo_demo.yaml")
    run = summary(checkout, "grpo-demo")
    assert run["signal"] == "reward" and run["last"] > run["first"] + 0.1
    assert (
        "0 tokens (0 trained)" not in result.stderr and "train data (tokenized): 20 prompts" in result.stderr
    )


def test_chat_refuses_unknown_commands_and_leaves_on_ctrl_c(checkout, quickstart):
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "ftkit", "chat", "examples/quickstart.yaml", "--max-new-tokens", "12"]
    result = subprocess.run(
        command,
        input="/help\nWhat is 6 plus 3?\n/exit\n",
        capture_output=True,
        text=True,
        cwd=checkout,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unknown command /help" in result.stdout and result.stdout.count("model> ") == 1
    assert "6 plus 3 is 9." in result.stdout
    assert run_cli("chat", "--help").stdout.count("--batch-size") == 0

    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=checkout
    )
    shown, deadline = b"", time.time() + 300
    while b"you> " not in shown:  # waiting at the prompt
        assert process.poll() is None and time.time() < deadline, shown
        if select.select([process.stdout], [], [], 0.1)[0]:
            shown += os.read(process.stdout.fileno(), 4096)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert b"Traceback" not in stderr
