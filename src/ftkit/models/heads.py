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

    def model_class(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_class)


HEADS: Table[Head] = Table("model head")
CAUSAL_LM = HEADS.register(Head("causal_lm", "AutoModelForCausalLM", "CAUSAL_LM"))
REWARD = HEADS.register(
    Head("reward", "AutoModelForSequenceClassification", "SEQ_CLS", {"num_labels": 1}, generates=False)
)
SCORE_MODULES = ("score", "classifier")
"""Names transformers gives a sequence-classification head (peft trains and saves these in full)."""


def head_of_adapter(adapter_dir: str | Path) -> Head:
    """The head of the model a saved LoRA adapter was trained on."""
    try:
        task = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("task_type")
    except (OSError, json.JSONDecodeError):
        return CAUSAL_LM
    return REWARD if task == REWARD.task_type else CAUSAL_LM


def head_of_model(model: str | Path) -> Head:
    """The head of a saved model, a local folder or a hub id (its config, from the cache when offline)."""
    local = Path(model) / "config.json"
    try:
        if local.is_file():
            architectures = json.loads(local.read_text()).get("architectures") or []
        else:
            from transformers import AutoConfig

            architectures = AutoConfig.from_pretrained(str(model)).architectures or []
    except (OSError, ValueError):
        return CAUSAL_LM  # the loader then says what is wrong with the model
    return REWARD if any(a.endswith("ForSequenceClassification") for a in architectures) else CAUSAL_LM
