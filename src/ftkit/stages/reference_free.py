"""What orpo and simpo share: TRL's reference-free preference trainers (ORPOTrainer, CPOTrainer), which
are experimental upstream (trl.experimental), fed with ftkit's prompt_ids/chosen_ids/rejected_ids.

Both trainers tokenize text prompts and answers row by row (tokenize_row); ftkit's rows are already the
one-call tokenization of each whole conversation, so tokenize_row only lays them out as the trainers'
collator expects: each answer after the prompt, the prompt masked from the labels.
"""

from __future__ import annotations

import logging
from typing import Any

from ftkit.data.tokenize import IGNORE_INDEX

log = logging.getLogger(__name__)


def pair_row(feature: dict[str, Any]) -> dict[str, list[int]]:
    """One preference pair as the CPO-family collator reads it."""
    prompt = list(feature["prompt_ids"])
    row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for name in ("chosen", "rejected"):
        answer = list(feature[f"{name}_ids"])
        row[f"{name}_input_ids"] = prompt + answer
        row[f"{name}_attention_mask"] = [1] * (len(prompt) + len(answer))
        row[f"{name}_labels"] = [IGNORE_INDEX] * len(prompt) + answer
    return row


def pretokenized(trainer_class: type) -> type:
    """`trainer_class` (ORPOTrainer or CPOTrainer) reading ftkit's pair ids instead of text."""
    log.info(
        "stage runs on TRL's %s, experimental upstream (trl.experimental): its options may change between "
        "TRL releases",
        trainer_class.__name__,
    )

    class Pretokenized(trainer_class):
        def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, list[int]]:
            return pair_row(feature)

    Pretokenized.__name__ = f"Pretokenized{trainer_class.__name__}"
    return Pretokenized
