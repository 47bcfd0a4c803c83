"""What sits on top of the transformer: the language-model head every generating stage trains, or the
one-output score head of a reward model (stage rm). A stage declares its head (StageSpec.head); a saved
model or adapter says which it has (config.json's architectures, adapter_config.json's task_type), so
loading it for eval, export or a GRPO reward needs no recipe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.tables import Table


@dataclass(frozen=True)
class Head:
    name: str
    auto_class: str
    """The transformers Auto class that builds the model with this head."""
    task_type: str
    """peft's task type: it decides which head modules a LoRA adapter trains and saves in full."""
    config: dict[str, Any] = field(default_factory=dict)
    """Settings the model's config needs for this head."""
    generates: bool = True
    """Whether the model writes text (chat, generate, generated-answer metrics)."""
    new_head: bool = False
    """The head is not in a language model's checkpoint: it starts random and is trained in full."""

    def model_class(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_class)


HEADS: Table[Head] = Table("model head")
CAUSAL_LM = HEADS.register(Head("causal_lm", "AutoModelForCausalLM", "CAUSAL_LM"))
SEQ2SEQ_LM = HEADS.register(Head("seq2seq_lm", "AutoModelForSeq2SeqLM", "SEQ_2_SEQ_LM"))
"""Encoder-decoder models (T5, BART, Switch Transformers): the prompt is encoded, the answer decoded."""
REWARD = HEADS.register(
    Head(
        "reward",
        "AutoModelForSequenceClassification",
        "SEQ_CLS",
        {"num_labels": 1},
        generates=False,
        new_head=True,
    )
)
SCORE_MODULES = ("score", "classifier")
"""Names transformers gives a sequence-classification head (peft trains and saves these in full)."""


def head_of_adapter(adapter_dir: str | Path) -> Head:
    """The head of the model a saved LoRA adapter was trained on."""
    try:
        task = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("task_type")
    except (OSError, json.JSONDecodeError):
        return CAUSAL_LM
    return next((head for head in HEADS.values() if head.task_type == task), CAUSAL_LM)


def model_config(model: str | Path, revision: str | None = None) -> dict[str, Any] | None:
    """A model's config.json: a local folder's, or a hub model's from the local cache (nothing is
    downloaded); None when it cannot be read here."""
    local = Path(model) / "config.json"
    try:
        if local.is_file():
            return json.loads(local.read_text())
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model), "config.json", revision=revision)
        return json.loads(Path(cached).read_text()) if isinstance(cached, str) else None
    except (OSError, ValueError):
        return None


def is_encoder_decoder(model: str | Path, revision: str | None = None) -> bool:
    """Whether the model's config says it is an encoder-decoder model (T5, BART, Switch Transformers)."""
    config = model_config(model, revision) or {}
    return bool(config.get("is_encoder_decoder"))


def head_of_model(model: str | Path) -> Head:
    """The head of a saved model, a local folder or a hub id (its config, from the cache when offline)."""
    config = model_config(model)
    if config is None:
        return CAUSAL_LM  # the loader then says what is wrong with the model
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return REWARD
    return SEQ2SEQ_LM if config.get("is_encoder_decoder") else CAUSAL_LM
