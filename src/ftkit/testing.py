"""Tiny models and tokenizers for tests and examples, built offline.

Tokenizers are trained locally with the `tokenizers` library (byte-level BPE, so every string
round-trips) and carry a family's real special tokens and chat template; models are real
transformers architectures with random weights and tiny dimensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHATML_JINJA = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizerSpec:
    """Special tokens and chat template of a model family."""

    special_tokens: Sequence[str]
    bos_token: str | None
    eos_token: str
    pad_token: str | None = None
    chat_template: str | None = None
    extra_special_tokens: Sequence[str] = field(default_factory=tuple)


CHATML = TokenizerSpec(
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    bos_token=None,
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    chat_template=CHATML_JINJA,
)


LLAMA3 = TokenizerSpec(
    special_tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|eom_id|>",
    ),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
)
GEMMA = TokenizerSpec(
    special_tokens=("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
    bos_token="<bos>",
    eos_token="<eos>",
    pad_token="<pad>",
)
MISTRAL = TokenizerSpec(
    special_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"), bos_token="<s>", eos_token="</s>"
)
PHI3 = TokenizerSpec(
    special_tokens=("<unk>", "<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
    bos_token="<s>",
    eos_token="<|endoftext|>",
    pad_token="<|endoftext|>",
)
PHI4 = TokenizerSpec(
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>"),
    bos_token="<|endoftext|>",
    eos_token="<|im_end|>",
)
QWEN3 = TokenizerSpec(
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    extra_special_tokens=("<think>", "</think>"),
    bos_token=None,
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
)
DEEPSEEK_R1 = TokenizerSpec(
    special_tokens=("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"),
    extra_special_tokens=("<think>", "</think>"),
    bos_token="<｜begin▁of▁sentence｜>",
    eos_token="<｜end▁of▁sentence｜>",
    pad_token="<｜end▁of▁sentence｜>",
)
T5 = TokenizerSpec(
    special_tokens=("<pad>", "</s>", "<unk>"), bos_token=None, eos_token="</s>", pad_token="<pad>"
)
BART = TokenizerSpec(
    special_tokens=("<s>", "<pad>", "</s>", "<unk>"), bos_token="<s>", eos_token="</s>", pad_token="<pad>"
)
GPT2 = TokenizerSpec(special_tokens=("<|endoftext|>",), bos_token="<|endoftext|>", eos_token="<|endoftext|>")

FAMILY_TOKENIZERS = {
    "chatml": CHATML,
    "qwen2_5": CHATML,
    "smollm2": CHATML,
    "qwen3": QWEN3,
    "qwen3_initial": QWEN3,
    "llama3": LLAMA3,
    "llama3_1": LLAMA3,
    "llama3_2": LLAMA3,
    "mistral_v0_3": MISTRAL,
    "gemma2": GEMMA,
    "gemma3": GEMMA,
    "phi3": PHI3,
    "phi3_5": PHI3,
    "phi4": PHI4,
    "deepseek_r1_distill_qwen": DEEPSEEK_R1,
    "alpaca": GPT2,
    "plain": GPT2,
}
"""For each built-in template, the special tokens of a tokenizer of its model family."""


def train_tokenizer(texts: Iterable[str], spec: TokenizerSpec, vocab_size: int = 512) -> Any:
    """A byte-level BPE `PreTrainedTokenizerFast` trained on `texts` with the spec's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = list(dict.fromkeys([*spec.special_tokens, *spec.extra_special_tokens]))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        clean_up_tokenization_spaces=False,
    )
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    return tokenizer


def tiny_llama_config(tokenizer: Any, hidden_size: int = 64, layers: int = 2, heads: int = 4) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(heads // 2, 1),
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def tiny_mixtral_config(tokenizer: Any, hidden_size: int = 64, layers: int = 2, experts: int = 4) -> Any:
    """A tiny Mixtral: a decoder-only mixture of experts (two experts per token)."""
    from transformers import MixtralConfig

    return MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=experts,
        num_experts_per_tok=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def tiny_t5_config(tokenizer: Any, d_model: int = 64, layers: int = 2, experts: int = 0) -> Any:
    """A tiny T5 (or, with experts, a Switch Transformers mixture of experts)."""
    from transformers import SwitchTransformersConfig, T5Config

    common = {
        "vocab_size": len(tokenizer),
        "d_model": d_model,
        "d_kv": d_model // 4,
        "d_ff": d_model * 2,
        "num_layers": layers,
        "num_decoder_layers": layers,
        "num_heads": 4,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.pad_token_id,
    }
    if experts:
        return SwitchTransformersConfig(
            **common,
            num_experts=experts,
            expert_capacity=64,
            num_sparse_encoder_layers=1,
            num_sparse_decoder_layers=1,
        )
    return T5Config(**common)


def tiny_bart_config(tokenizer: Any, d_model: int = 64, layers: int = 2) -> Any:
    from transformers import BartConfig

    return BartConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=d_model * 2,
        decoder_ffn_dim=d_model * 2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )


def save_tiny_model(
    directory: str | Path, tokenizer: Any, config: Any, seed: int = 0, weights: bool = True
) -> Path:
    """Write config and tokenizer (and random safetensors weights when `weights`) to `directory`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    if weights:
        torch.manual_seed(seed)
        model_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model_class.from_config(config).save_pretrained(directory)
    else:
        config.save_pretrained(directory)
    return directory


# ------------------------------------------------------------------ merge memory (test and benchmark)

_MERGE_PROBE = """
import json, sys
from pathlib import Path
from ftkit.models.loader import load_merged
from ftkit.merge import current_memory_mb, peak_memory_mb, reset_peak_memory, stream_merge
import peft, transformers  # imported before measuring, by both paths
base, adapter, out, how = sys.argv[1:5]
before = current_memory_mb()
reset_peak_memory()
if how == "streaming":
    stream_merge(Path(base), Path(adapter), Path(out), "16MB")
else:
    load_merged(base, adapter)
print(json.dumps({"growth": peak_memory_mb() - before}))
"""


def save_merge_base(directory: str | Path, tokenizer: Any, layers: int) -> float:
    """A Llama of `layers` 512-wide layers (~14 MB each) saved in 16 MB shards; returns its size in MB."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=8000,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        tie_word_embeddings=False,
    )
    directory = Path(directory)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory, max_shard_size="16MB")
    tokenizer.save_pretrained(directory)
    return sum(f.stat().st_size for f in directory.glob("*.safetensors")) / 2**20


def merge_memory_growth(base: Path, adapter: Path, out: Path, how: str) -> float:
    """How far a fresh process's resident memory rises above where it stood before merging (MB), merging
    `streaming` (shard by shard) or `whole` (the model loaded)."""
    import json
    import subprocess
    import sys

    Path(out).mkdir()
    probe = subprocess.run(
        [sys.executable, "-c", _MERGE_PROBE, str(base), str(adapter), str(out), how],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(probe.stdout.strip().splitlines()[-1])["growth"]
