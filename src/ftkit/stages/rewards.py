"""GRPO rewards: built-ins for the seed tasks, user functions by import path, reward models by path.

A reward function gets the prompts, the completions and the dataset's columns (ftkit's processed GRPO
data carries `reference`: the example's answer) and returns one float per completion, or None where
it does not apply (TRL then leaves it out of that completion's total). TRL logs each reward under its
function's name, which is also its name here. Adding a built-in is one `Reward(...)` entry in REWARDS.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ftkit.errors import UserError
from ftkit.metrics import final_answer, final_number

Score = float | None


def _normalize(text: str) -> str:
    return " ".join(text.strip().split())


def _text(completion: Any) -> str:
    """A completion as text (TRL passes strings for text prompts, message lists for chat prompts)."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def _answer(completion: Any) -> str:
    """The part of a completion that answers: after a reasoning model's `</think>`, if any."""
    return final_answer(_text(completion))


def exact_match(completions: Sequence[Any], reference: Sequence[str | None], **_: Any) -> list[Score]:
    """1 when the completion (its answer after any `</think>`) equals the reference, whitespace normalized."""
    return [
        None if ref is None else float(_normalize(_answer(c)) == _normalize(ref))
        for c, ref in zip(completions, reference, strict=True)
    ]


def numeric_match(completions: Sequence[Any], reference: Sequence[str | None], **_: Any) -> list[Score]:
    """1 when the completion's final number equals the reference's (GSM8K `####`, `\\boxed{}`), else 0."""
    scores: list[Score] = []
    for completion, ref in zip(completions, reference, strict=True):
        expected = None if ref is None else final_number(ref)
        if expected is None:
            scores.append(None)
            continue
        got = final_number(_text(completion))
        scores.append(float(got is not None and abs(got - expected) < 1e-6))
    return scores


def label_match(completions: Sequence[Any], reference: Sequence[str | None], **_: Any) -> list[Score]:
    """Generative classification: 1 when the completion's first word is the reference label."""
    scores: list[Score] = []
    for completion, ref in zip(completions, reference, strict=True):
        if ref is None:
            scores.append(None)
            continue
        words = re.findall(r"[\w-]+", _answer(completion).lower())
        scores.append(float(bool(words) and words[0] == ref.strip().lower()))
    return scores


def format_match(completions: Sequence[Any], pattern: str, **_: Any) -> list[Score]:
    """1 when the completion matches the regular expression `pattern` (re.search, dot matches newline)."""
    compiled = re.compile(pattern, re.DOTALL)
    return [float(compiled.search(_text(c)) is not None) for c in completions]


def length_penalty(completions: Sequence[Any], max_chars: int = 1000, **_: Any) -> list[Score]:
    """Minus the completion's length as a share of max_chars (0 for empty, -1 at max_chars or longer)."""
    return [-min(len(_text(c)) / max_chars, 1.0) for c in completions]


@dataclass(frozen=True)
class Reward:
    function: Callable[..., list[Score]]
    description: str
    params: tuple[str, ...] = ()
    """Parameters it takes from the recipe's `params`."""
    required: tuple[str, ...] = ()


REWARDS: dict[str, Reward] = {
    "exact_match": Reward(exact_match, "the completion equals the reference answer"),
    "numeric_match": Reward(numeric_match, "the final number matches the reference's (#### or \\boxed{})"),
    "label_match": Reward(label_match, "the first word is the reference label (generative classification)"),
    "format_match": Reward(
        format_match, "the completion matches a regular expression", ("pattern",), ("pattern",)
    ),
    "length_penalty": Reward(length_penalty, "shorter completions score higher", ("max_chars",)),
}


def resolve_reward(name: str, params: dict[str, Any]) -> Callable[..., list[Score]]:
    """A built-in reward bound to its params, or a user function imported from `module:function`."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(f"reward {name!r}: cannot import {module_name!r} ({exc})") from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise UserError(f"reward {name!r}: {module_name} has no function {attribute!r}")
        return partial(function, **params) if params else function
    if name not in REWARDS:
        close = difflib.get_close_matches(name, REWARDS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"unknown reward {name!r}{hint}; built-ins: {', '.join(REWARDS)}, or give module.path:function"
        )
    reward = REWARDS[name]
    unknown = sorted(set(params) - set(reward.params))
    missing = sorted(set(reward.required) - set(params))
    if unknown or missing:
        accepted = ", ".join(reward.params) or "none"
        raise UserError(
            f"reward {name}: params {unknown or missing} {'not accepted' if unknown else 'missing'}; "
            f"it takes: {accepted}"
        )
    return partial(reward.function, **params) if params else reward.function
