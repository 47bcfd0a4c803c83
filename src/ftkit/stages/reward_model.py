"""A reward model as a GRPO reward: an ftkit `rm` run (its LoRA adapter on its base), its export, or any
saved sequence-classification model with one output, given as `grpo.reward_funcs: [{model: path}]`.

ftkit scores the completions itself rather than handing TRL the path: TRL would score prompt + completion
as decoded without special tokens, so the end-of-turn marker the reward model read last in every
training pair (where its score is taken) would be missing. Here each completion is scored as training
rendered it: the rendered prompt, the answer, then the template's end-of-turn marker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ftkit.errors import UserError
from ftkit.stages.rewards import completion_text

log = logging.getLogger(__name__)


def load_reward_model(path: str) -> tuple[Any, Any]:
    """The reward model at `path` (a run or adapter folder, or a model folder or hub id) and its tokenizer."""
    from ftkit.models.loader import load_merged, load_model_dir
    from ftkit.runfiles import read_run, recorded_base

    if (Path(path) / "adapter_config.json").is_file():
        base = recorded_base(path, read_run(path))
        if base is None:
            raise UserError(
                f"reward model {path}: cannot tell the base model of its adapter; export it first"
            )
        model, tokenizer = load_merged(base, path)
    else:
        model, tokenizer = load_model_dir(path)
    if model.can_generate() or getattr(model.config, "num_labels", None) != 1:
        raise UserError(
            f"reward model {path} is not a reward model (a sequence-classification model with one output): "
            "train one with stage rm, or give a built-in reward by name"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last token before padding
    return model.eval(), tokenizer


def reward_model_function(
    path: str, end_of_turn: str, bos: str = "", batch_size: int = 16
) -> Callable[..., list[float]]:
    """A TRL reward function scoring each (rendered prompt, completion) pair with the reward model;
    `bos` is put back in front of prompts that had the template's BOS taken off."""
    model, tokenizer = load_reward_model(path)
    log.info("reward model %s: completions scored with %r appended", path, end_of_turn)

    def score(prompts: Sequence[str], completions: Sequence[Any], **_: Any) -> list[float]:
        import torch
        from accelerate import PartialState

        device = PartialState().device
        if model.device != device:
            model.to(device)
        texts = [
            f"{'' if prompt.startswith(bos) else bos}{prompt}{completion_text(completion)}{end_of_turn}"
            for prompt, completion in zip(prompts, completions, strict=True)
        ]
        scores: list[float] = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                add_special_tokens=False,
                padding=True,
                padding_side="right",
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                scores += model(**batch).logits[:, 0].float().tolist()
        return scores

    score.__name__ = f"model_{Path(path).name or 'reward'}"
    return score
