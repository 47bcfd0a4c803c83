"""Regenerate examples/tiny-chatml: a ~1M-parameter Llama-architecture config and a byte-level BPE
tokenizer with ChatML special tokens, trained on the demo data. No weights are shipped: the quickstart
recipe initializes them at random (model.from_scratch).

    .venv/bin/python scripts/make_tiny_model.py
"""

from __future__ import annotations

import json
from pathlib import Path

from ftkit.testing import CHATML, save_tiny_model, tiny_llama_config, train_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    rows = json.loads((ROOT / "data" / "demo_sft.json").read_text())
    texts = [" ".join(row.values()) for row in rows] + ["user assistant system\n"]
    tokenizer = train_tokenizer(texts, CHATML, vocab_size=640)
    config = tiny_llama_config(tokenizer, hidden_size=128, layers=4, heads=4)
    out = save_tiny_model(ROOT / "examples" / "tiny-chatml", tokenizer, config, weights=False)
    print(f"wrote {out} (vocab {len(tokenizer)})")


if __name__ == "__main__":
    main()
