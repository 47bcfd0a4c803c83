"""The training benchmark still runs (a tiny model, a few steps): every contender trains, the table is
printed, and the contenders' first losses agree. `make bench` runs the full comparison."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_training_benchmark_smoke():
    result = subprocess.run(
        [sys.executable, "bench/training.py", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for contender in (
        "TRL, no packing",
        "TRL, padding-free",
        "TRL, packing",
        "ftkit, padding-free",
        "ftkit, packing",
    ):
        assert f"| {contender} |" in result.stdout, contender
    assert "first losses agree: {'unpacked': True, 'packed': True}" in result.stdout


@pytest.mark.slow
def test_streaming_memory_stays_flat_as_the_corpus_grows():
    result = subprocess.run(
        [sys.executable, "bench/streaming.py"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)
    ratio = float(result.stdout.split("documents / 200,000: ")[1].split()[0])
    assert ratio <= 1.15
