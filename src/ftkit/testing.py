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


def save_tiny_model(
    directory: str | Path, tokenizer: Any, config: Any, seed: int = 0, weights: bool = True
) -> Path:
    """Write config and tokenizer (and random safetensors weights when `weights`) to `directory`."""
    import torch
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    if weights:
        torch.manual_seed(seed)
        AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    else:
        config.save_pretrained(directory)
    return directory
