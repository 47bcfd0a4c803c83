"""The training benchmark still runs (a tiny model, a few steps): every contender trains, the table is
printed, and the contenders' first losses agree. `make bench` runs the full comparison."""

from __future__ import annotations

import subprocess
import sys

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
