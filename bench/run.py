"""ftkit benchmarks (`make bench`): CLI start-up, preprocessing throughput, and the memory of the streaming
LoRA merge against loading the whole model, on this machine.

Numbers are printed, never asserted: compare them across commits on the same machine.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wall(command: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup() -> dict[str, float]:
    ftkit = [sys.executable, "-m", "ftkit"]
    return {
        "ftkit --version (s)": _wall([*ftkit, "--version"]),
        "ftkit check recipes/llama32_3b_paraphrase.yaml (s)": _wall(
            [*ftkit, "check", "-q", "recipes/llama32_3b_paraphrase.yaml"]
        ),
    }


def tokenization(rows: int = 20000) -> dict[str, float]:
    from transformers import AutoTokenizer

    from ftkit.data.tokenize import MaskOptions, encode_conversations
    from ftkit.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "examples" / "tiny-chatml")
    demo = json.loads((ROOT / "data" / "demo_sft.json").read_text())
    examples = [
        {
            "system": None,
            "messages": [
                {"role": "user", "content": f"{row['instruction']} {row['input']}"},
                {"role": "assistant", "content": row["output"]},
            ],
        }
        for row in (demo * (rows // len(demo) + 1))[:rows]
    ]
    template, options = get_template("chatml"), MaskOptions(max_length=512)
    start = time.perf_counter()
    for offset in range(0, rows, 1000):
        encode_conversations(tokenizer, template, examples[offset : offset + 1000], options)
    elapsed = time.perf_counter() - start
    return {"tokenize+mask, one process (conversations/s)": rows / elapsed}


def merge_memory() -> dict[str, float]:
    """Peak memory added by merging a LoRA adapter into bases of ~160 MB and ~420 MB (16 MB shards)."""
    import tempfile

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftkit.testing import merge_memory_growth, save_merge_base

    results = {}
    tokenizer = AutoTokenizer.from_pretrained(ROOT / "examples" / "tiny-chatml")
    with tempfile.TemporaryDirectory() as work:
        for layers in (10, 30):
            base, adapter = Path(work) / f"base{layers}", Path(work) / f"adapter{layers}"
            size = save_merge_base(base, tokenizer, layers)
            lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
            get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(adapter)
            for how in ("streaming", "whole"):
                growth = merge_memory_growth(base, adapter, Path(work) / f"{how}{layers}", how)
                results[f"merge {size:.0f} MB base, {how} (peak MB added)"] = growth
    return results


def main() -> None:
    results = {**startup(), **tokenization(), **merge_memory()}
    width = max(len(name) for name in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value:,.3f}")


if __name__ == "__main__":
    main()
