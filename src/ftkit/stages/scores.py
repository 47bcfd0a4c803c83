"""What `ftkit eval` measures for the stages that learn from judgements rather than from answers alone:
on the held-out split as the stage processed it, how well the model tells the better answer from the
worse one. Each stage names its scorer (StageSpec.evaluate).

- pairs (dpo, orpo, simpo): the summed log-probability of each answer given the prompt; accuracy is the
  share of pairs where the chosen answer is the likelier one, margin the mean difference (with
  --compare-base, a dpo margin's growth is its implicit reward margin divided by beta);
- labelled answers (kto): the mean log-probability of desirable and of undesirable answers, and the gap;
- reward models (rm): the score of each whole conversation; accuracy and mean margin of chosen over
  rejected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: declaring the stages imports no torch
    import torch


def _batches(rows: Any, size: int) -> Iterator[dict[str, list]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _padded(sequences: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(ids) for ids in sequences)
    ids = torch.tensor([row + [pad] * (width - len(row)) for row in sequences])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in sequences])
    return ids, mask


def answer_logps(model: Any, prompts: list[list[int]], answers: list[list[int]], pad: int) -> list[float]:
    """log p(answer | prompt), summed over the answer's tokens, for each row."""
    import torch

    ids, mask = _padded([p + a for p, a in zip(prompts, answers, strict=True)], pad)
    with torch.inference_mode():
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(logits.device))[..., 0]
    out = []
    for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        start = len(prompt) - 1  # the position that predicts the answer's first token
        out.append(float(logps[row, start : start + len(answer)].sum()))
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def score_pairs(model: Any, rows: Any, pad: int, batch_size: int) -> dict[str, float]:
    chosen, rejected = [], []
    for batch in _batches(rows, batch_size):
        chosen += answer_logps(model, batch["prompt_ids"], batch["chosen_ids"], pad)
        rejected += answer_logps(model, batch["prompt_ids"], batch["rejected_ids"], pad)
    gaps = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "pair_accuracy": _mean([float(gap > 0) for gap in gaps]),
        "logp_margin": _mean(gaps),
        "chosen_logp": _mean(chosen),
        "rejected_logp": _mean(rejected),
    }


def score_feedback(model: Any, rows: Any, pad: int, batch_size: int) -> dict[str, float]:
    desirable, undesirable = [], []
    for batch in _batches(rows, batch_size):
        logps = answer_logps(model, batch["prompt_ids"], batch["completion_ids"], pad)
        for logp, label in zip(logps, batch["label"], strict=True):
            (desirable if label else undesirable).append(logp)
    return {
        "desirable_logp": _mean(desirable),
        "undesirable_logp": _mean(undesirable),
        "logp_margin": _mean(desirable) - _mean(undesirable),
    }


def _rewards(model: Any, sequences: list[list[int]], pad: int) -> list[float]:
    import torch

    ids, mask = _padded(sequences, pad)
    with torch.inference_mode():
        scores = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
    return [float(score) for score in scores[:, 0]]


def score_rewards(model: Any, rows: Any, pad: int, batch_size: int) -> dict[str, float]:
    model.config.pad_token_id = pad  # the score is read at the last token before the padding
    gaps = []
    for batch in _batches(rows, batch_size):
        prompts = batch["prompt_ids"]
        chosen = _rewards(model, [p + c for p, c in zip(prompts, batch["chosen_ids"], strict=True)], pad)
        rejected = _rewards(model, [p + r for p, r in zip(prompts, batch["rejected_ids"], strict=True)], pad)
        gaps += [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {"reward_accuracy": _mean([float(gap > 0) for gap in gaps]), "reward_margin": _mean(gaps)}
