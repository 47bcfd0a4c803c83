"""Shared fixtures. Tests never touch the network: hub access is switched off for the whole session,
caches live in a temporary folder, and models and tokenizers are built locally (ftkit.testing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"

_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "WANDB_MODE": "offline",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="session", autouse=True)
def offline_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("hf_home")
    os.environ.update(_OFFLINE)
    # ftkit's default caches live under ~/.cache: keep the tests' out of the real home.
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    os.environ["HF_HOME"] = str(home)
    os.environ["HF_DATASETS_CACHE"] = str(home / "datasets")


def qa_texts() -> list[str]:
    rows = json.loads((TEST_DATA / "qa.json").read_text())
    return [f"{r['instruction']} {r['input']} {r['output']}" for r in rows] + ["user assistant system"]


@pytest.fixture(scope="session")
def chatml_tokenizer():
    from ftkit.testing import CHATML, train_tokenizer

    return train_tokenizer(qa_texts(), CHATML, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, chatml_tokenizer) -> Path:
    """A tiny Llama-architecture model with random weights (safetensors) and a ChatML tokenizer."""
    from ftkit.testing import save_tiny_model, tiny_llama_config

    directory = tmp_path_factory.mktemp("tiny-chatml")
    return save_tiny_model(directory, chatml_tokenizer, tiny_llama_config(chatml_tokenizer), seed=0)


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `ftkit ...` in a subprocess, as a user would (`env`: extra environment variables)."""
    env = {**os.environ, **_OFFLINE, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ftkit", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
