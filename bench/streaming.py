"""Streaming keeps memory flat as the corpus grows: the same streamed `pt` run (20 steps of the tiny model)
over a generated corpus of 2,000,000 short documents and over one 10x smaller, each in its own process;
the peak RSS of each run is printed side by side.

    python bench/streaming.py [--docs 2000000] [--steps 20]

The corpora are written to a temporary folder and removed afterwards (the large one is ~120 MB).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "river",
    "mountain",
    "cloud",
    "stone",
    "field",
    "light",
    "water",
    "forest",
    "road",
    "city",
    "morning",
    "night",
    "story",
]


def write_corpus(folder: Path, docs: int) -> int:
    """`docs` short documents (5-15 words) in one JSON-lines file; returns its size in bytes."""
    folder.mkdir(parents=True)
    rng = random.Random(0)
    path = folder / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, docs, 100_000):
            lines = (
                json.dumps({"text": f"{i}: " + " ".join(rng.choices(WORDS, k=rng.randint(5, 15)))})
                for i in range(start, min(docs, start + 100_000))
            )
            handle.write("\n".join(lines) + "\n")
    (folder / "dataset_info.json").write_text(
        json.dumps({"corpus": {"file_name": "corpus.jsonl", "formatting": "text"}})
    )
    return path.stat().st_size


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Peak resident memory (MB) of `command` and its children, and its wall time, in a fresh process."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "if done.returncode: sys.exit(done.stderr[-3000:])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - start)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, *command], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    rss, wall = result.stdout.split()
    return float(rss), float(wall)


def streamed_run(work: Path, data: Path, steps: int) -> tuple[float, float]:
    recipe = {
        "stage": "pt",
        "model": {"name_or_path": str(ROOT / "examples" / "tiny-chatml"), "from_scratch": True},
        "adapter": {"type": "full"},
        "data": {"dataset_dir": str(data), "train": "corpus", "streaming": True, "max_length": 128},
        "train": {
            "output_dir": str(work / "run"),
            "max_steps": steps,
            "per_device_train_batch_size": 8,
            "save_strategy": "no",
            "logging_steps": steps,
        },
    }
    path = work / "recipe.json"  # JSON is YAML
    path.write_text(json.dumps(recipe))
    return peak_rss_mb([sys.executable, "-m", "ftkit", "train", str(path)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2_000_000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for docs in (args.docs // 10, args.docs):
            work = Path(scratch) / str(docs)
            start = time.perf_counter()
            size = write_corpus(work / "data", docs)
            written = time.perf_counter() - start
            rss, wall = streamed_run(work, work / "data", args.steps)
            rows[docs] = {"corpus_mb": size / 1e6, "peak_rss_mb": rss, "train_s": wall, "write_s": written}
    small, large = rows[args.docs // 10], rows[args.docs]
    print("| documents | corpus (MB) | peak RSS (MB) | ftkit train (s) |\n|---|---|---|---|")
    for docs, row in rows.items():
        print(f"| {docs:,} | {row['corpus_mb']:.0f} | {row['peak_rss_mb']:.0f} | {row['train_s']:.1f} |")
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(
        f"peak RSS, {args.docs:,} documents / {args.docs // 10:,}: {ratio:.3f} ({args.steps} streamed pt steps)"
    )


if __name__ == "__main__":
    main()
