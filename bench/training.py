"""Training throughput and peak memory, ftkit against TRL on the same job, side by side (`make bench`).

The assets are built here, deterministically: a ~32M-parameter Llama-architecture model with random
weights, a locally trained tokenizer with a Llama-3-style chat template, and 2,000 synthetic alpaca
rows with long-tailed lengths. Every contender trains the same job (LoRA r16 alpha 32 dropout 0.05 on
all linear layers, max length 512, batch 4, lr 2e-4, fp32, seed 42) in its own process; contenders run
interleaved, round after round, and the report gives each round's ratios and their median. Tokens/s
count the tokens that are not padding, in the train loop (the trainer's num_tokens over its runtime).

    python bench/training.py                 # the full comparison (minutes)
    python bench/training.py --smoke         # a tiny model, a few steps: that the benchmark still runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
JOB = {"r": 16, "alpha": 32, "dropout": 0.05, "max_length": 512, "batch": 4, "lr": 2e-4, "seed": 42}
SIZES = {
    "small": {
        "hidden": 512,
        "layers": 8,
        "heads": 8,
        "kv_heads": 4,
        "intermediate": 1408,
        "vocab": 8192,
        "rows": 2000,
    },
    "smoke": {
        "hidden": 64,
        "layers": 2,
        "heads": 4,
        "kv_heads": 2,
        "intermediate": 176,
        "vocab": 600,
        "rows": 120,
    },
}
WORDS = tuple(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "for",
        "on",
        "that",
        "with",
        "as",
        "was",
        "by",
        "at",
        "from",
        "this",
        "be",
        "are",
        "or",
        "an",
        "it",
        "which",
        "not",
        "have",
        "has",
        "model",
        "data",
        "train",
        "answer",
        "question",
        "value",
        "number",
        "time",
        "first",
        "year",
        "people",
        "way",
        "day",
        "man",
        "thing",
        "woman",
        "life",
        "child",
        "world",
        "school",
        "state",
        "family",
        "student",
        "group",
        "country",
        "problem",
        "hand",
        "part",
        "place",
        "case",
        "week",
        "company",
        "system",
        "program",
        "question",
        "work",
        "government",
        "number",
        "night",
        "point",
        "home",
        "water",
        "room",
        "mother",
        "area",
        "money",
        "story",
        "fact",
        "month",
    ]
)


@dataclass(frozen=True)
class Contender:
    name: str
    runner: str
    """trl or ftkit."""
    options: dict[str, Any]
    packed: bool = False


CONTENDERS = (
    Contender("TRL, no packing", "trl", {}),
    # TRL refuses max_length with padding_free alone; no synthetic row is longer than 512 tokens.
    Contender("TRL, padding-free", "trl", {"padding_free": True, "max_length": None}),
    Contender("TRL, packing", "trl", {"packing": True}, packed=True),
    Contender("ftkit, no packing", "ftkit", {}),
    Contender("ftkit, padding-free", "ftkit", {"data.padding_free": True}),
    Contender("ftkit, packing", "ftkit", {"data.packing": True}, packed=True),
)


# ------------------------------------------------------------------ assets


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def synthetic_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Alpaca rows whose lengths have a long tail (lognormal): most short, a few near max_length."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt = max(3, int(rng.lognormvariate(2.9, 0.6)))
        answer = max(3, min(440, int(rng.lognormvariate(3.62, 0.9))))
        rows.append({"instruction": _sentence(rng, prompt), "input": "", "output": _sentence(rng, answer)})
    return rows


def build_assets(work: Path, size: str) -> dict[str, Any]:
    """Model, tokenizer and data under `work` (built once; the same bytes every time)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from ftkit.models.special_tokens import attach_chat_template
    from ftkit.templates import get_template
    from ftkit.testing import LLAMA3, train_tokenizer

    spec = SIZES[size]
    model_dir, data_dir = work / "model", work / "data"
    rows = synthetic_rows(spec["rows"])
    if not (model_dir / "model.safetensors").is_file():
        texts = [f"{r['instruction']} {r['output']}" for r in rows[:500]] + ["user assistant system"]
        tokenizer = train_tokenizer(texts, LLAMA3, vocab_size=spec["vocab"])
        attach_chat_template(tokenizer, get_template("llama3"))
        tokenizer.pad_token = tokenizer.eos_token
        config = LlamaConfig(
            # A real vocabulary's LM head (the synthetic text needs fewer tokens; the rest are never seen).
            vocab_size=max(len(tokenizer), spec["vocab"]),
            hidden_size=spec["hidden"],
            intermediate_size=spec["intermediate"],
            num_hidden_layers=spec["layers"],
            num_attention_heads=spec["heads"],
            num_key_value_heads=spec["kv_heads"],
            max_position_embeddings=1024,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        import torch

        torch.manual_seed(0)
        model_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(model_dir)
        AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "rows.json").write_text(json.dumps(rows))
        (data_dir / "dataset_info.json").write_text(json.dumps({"rows": {"file_name": "rows.json"}}))
    return {"model": str(model_dir), "data": str(data_dir), "rows": len(rows)}


def parameters(model_dir: str) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    h, i, v, n = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    return n * (2 * h * h + 2 * h * kv + 3 * h * i) + 2 * v * h


def matmul_peak() -> float:
    """This machine's fp32 matmul rate (GFLOP/s): the best of several large products (the machine is shared
    by its own background work, so the best is the one closest to what the cores can do)."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(12):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


# ------------------------------------------------------------------ one contender, in its own process


def _trl(assets: dict[str, Any], options: dict[str, Any], steps: int, work: Path) -> list[dict[str, Any]]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(JOB["seed"])
    rows = json.loads((Path(assets["data"]) / "rows.json").read_text())
    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["instruction"]}],
                "completion": [{"role": "assistant", "content": r["output"]}],
            }
            for r in rows
        ]
    )
    tokenizer = AutoTokenizer.from_pretrained(assets["model"])
    model = AutoModelForCausalLM.from_pretrained(assets["model"], dtype="float32")
    args = SFTConfig(
        output_dir=str(work / "out"),
        max_steps=steps,
        per_device_train_batch_size=JOB["batch"],
        learning_rate=JOB["lr"],
        seed=JOB["seed"],
        data_seed=JOB["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        lr_scheduler_type="cosine",
        activation_checkpointing=False,  # TRL's SFTConfig turns it on by default; the job runs without
        bf16=False,  # TRL's SFTConfig defaults to bf16 (autocast, even on a CPU); the job is fp32
        **{"max_length": JOB["max_length"], **options},
    )
    lora = LoraConfig(
        r=JOB["r"],
        lora_alpha=JOB["alpha"],
        lora_dropout=JOB["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
    )
    trainer.train()
    return trainer.state.log_history


def _ftkit(assets: dict[str, Any], options: dict[str, Any], steps: int, work: Path) -> list[dict[str, Any]]:
    from ftkit.cli import main

    recipe = {
        "stage": "sft",
        "model": {"name_or_path": assets["model"], "template": "llama3", "dtype": "float32"},
        "adapter": {"type": "lora", "r": JOB["r"], "alpha": JOB["alpha"], "dropout": JOB["dropout"]},
        "data": {
            "dataset_dir": assets["data"],
            "train": "rows",
            "max_length": JOB["max_length"],
            "cache": False,
        },
        "train": {
            "output_dir": str(work / "out"),
            "max_steps": steps,
            "per_device_train_batch_size": JOB["batch"],
            "learning_rate": JOB["lr"],
            "lr_scheduler_type": "cosine",
            "seed": JOB["seed"],
            "precision": "fp32",
            "logging_steps": 1,
            "save_strategy": "no",
        },
    }
    path = work / "recipe.json"
    path.write_text(json.dumps(recipe))
    overrides = [f"{key}={json.dumps(value)}" for key, value in options.items()]
    if main(["--log-level", "warning", "train", str(path), *overrides]) != 0:
        raise SystemExit("ftkit train failed")
    return json.loads((work / "out" / "trainer_state.json").read_text())["log_history"]


def run_one(contender: Contender, assets: dict[str, Any], steps: int) -> dict[str, Any]:
    """Train one contender in this process; its throughput, first loss and peak memory."""
    import resource

    with tempfile.TemporaryDirectory() as work:
        runner = _trl if contender.runner == "trl" else _ftkit
        history = runner(assets, contender.options, steps, Path(work))
    tokens = max(entry["num_tokens"] for entry in history if "num_tokens" in entry)
    runtime = next(entry["train_runtime"] for entry in history if "train_runtime" in entry)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {
        "tokens_per_s": tokens / runtime,
        "tokens": tokens,
        "seconds": runtime,
        "first_loss": losses[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(contender: Contender, assets: dict[str, Any], steps: int) -> dict[str, Any]:
    """run_one in a fresh process (so that peak memory is its own)."""
    index = CONTENDERS.index(contender)
    command = [
        sys.executable,
        __file__,
        "--one",
        str(index),
        "--assets",
        json.dumps(assets),
        "--steps",
        str(steps),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{contender.name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the comparison


def compare(size: str, rounds: int, steps: int, packed_steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        assets = build_assets(Path(work), size)
        n = parameters(assets["model"])
        peak = matmul_peak()
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in CONTENDERS}
        for round_index in range(rounds):
            order = CONTENDERS if round_index % 2 == 0 else tuple(reversed(CONTENDERS))  # A, B, ... then back
            for contender in order:
                runs[contender.name].append(
                    measure(contender, assets, packed_steps if contender.packed else steps)
                )
                print(
                    f"round {round_index + 1}: {contender.name}: {runs[contender.name][-1]['tokens_per_s']:.0f} tokens/s",
                    file=sys.stderr,
                )
        peak = max(peak, matmul_peak())  # measured before and after the runs: the better of the two
    return report(runs, n, peak, size, steps, packed_steps)


def report(
    runs: dict[str, list[dict[str, Any]]], n: int, peak: float, size: str, steps: int, packed_steps: int
) -> dict[str, Any]:
    rounds = len(next(iter(runs.values())))
    trl = [name for name in runs if name.startswith("TRL")]
    ours = [name for name in runs if name.startswith("ftkit")]

    def fastest(names: list[str], index: int) -> float:
        return max(runs[name][index]["tokens_per_s"] for name in names)

    table = {}
    for name, results in runs.items():
        speed = statistics.median(r["tokens_per_s"] for r in results)
        table[name] = {
            "tokens_per_s": speed,
            "vs TRL no packing": statistics.median(
                r["tokens_per_s"] / b["tokens_per_s"]
                for r, b in zip(results, runs["TRL, no packing"], strict=True)
            ),
            "mfu": 6 * n * speed / (peak * 1e9),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "first_loss": results[0]["first_loss"],
        }
    best = [fastest(ours, i) / fastest(trl, i) for i in range(rounds)]
    unpacked = {name: runs[name][0]["first_loss"] for name in runs if not name.endswith(", packing")}
    packed = {name: runs[name][0]["first_loss"] for name in runs if name.endswith(", packing")}

    def agree(losses: dict[str, float]) -> bool:
        # Padded and padding-free batches sum in another order: equal to float32 rounding, not bit for bit.
        return not losses or (max(losses.values()) - min(losses.values())) / max(losses.values()) < 1e-4

    return {
        "machine": {"cpus": os.cpu_count(), "fp32_matmul_peak_gflops": peak},
        "job": {
            **JOB,
            "size": size,
            "parameters": n,
            "steps": steps,
            "packed_steps": packed_steps,
            "rounds": rounds,
        },
        "contenders": table,
        "ftkit fastest / TRL fastest, per round": best,
        "ftkit fastest / TRL fastest, median": statistics.median(best),
        "first losses": {"unpacked": unpacked, "packed": packed},
        "first losses agree": {"unpacked": agree(unpacked), "packed": agree(packed)},
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| run | tokens/s | vs TRL no packing | MFU | peak RSS (MB) | first loss |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["contenders"].items():
        lines.append(
            f"| {name} | {row['tokens_per_s']:.0f} | {row['vs TRL no packing']:.2f}x | {row['mfu'] * 100:.1f}% | "
            f"{row['peak_rss_mb']:.0f} | {row['first_loss']:.4f} |"
        )
    lines.append("")
    lines.append(
        f"ftkit's fastest / TRL's fastest (median of {result['job']['rounds']} rounds): "
        f"{result['ftkit fastest / TRL fastest, median']:.2f}x; first losses agree: {result['first losses agree']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny model and a few steps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--assets", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(CONTENDERS[args.one], json.loads(args.assets), args.steps)))
        return
    if args.smoke:
        result = compare("smoke", rounds=1, steps=3, packed_steps=2)
    else:
        result = compare("small", rounds=args.rounds, steps=30, packed_steps=10)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
