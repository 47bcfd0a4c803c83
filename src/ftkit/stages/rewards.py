"""GRPO rewards: built-ins for the seed tasks, user functions by import path, reward models by path.

A reward function gets the prompts, the completions and the dataset's columns (ftkit's processed GRPO
data carries `reference`: the example's answer) and returns one float per completion, or None where
it does not apply (TRL then leaves it out of that completion's total). TRL logs each reward under its
function's name, which is also its name here. Adding a built-in is one `Reward(...)` entry in REWARDS.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ftkit.answer_scores import exact_match_score, label_match_score, numeric_match_score
from ftkit.errors import UserError

Score = float | None


def completion_text(completion: Any) -> str:
    """A completion as text (TRL passes strings for text prompts, message lists for chat prompts)."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def _against_reference(score: Callable[[str, str], float | None]) -> Callable[..., list[Score]]:
    """A reward from a per-answer metric score (metrics.py): the same name scores the same way."""

    def reward(completions: Sequence[Any], reference: Sequence[str | None], **_: Any) -> list[Score]:
        return [
            None if ref is None else score(completion_text(c), ref)
            for c, ref in zip(completions, reference, strict=True)
        ]

    reward.__name__ = score.__name__.removesuffix("_score")
    reward.__doc__ = score.__doc__
    return reward


exact_match = _against_reference(exact_match_score)
numeric_match = _against_reference(numeric_match_score)
label_match = _against_reference(label_match_score)


def format_match(completions: Sequence[Any], pattern: str, **_: Any) -> list[Score]:
    """1 when the completion matches the regular expression `pattern` (re.search, dot matches newline)."""
    compiled = re.compile(pattern, re.DOTALL)
    return [float(compiled.search(completion_text(c)) is not None) for c in completions]


def length_penalty(completions: Sequence[Any], max_chars: int = 1000, **_: Any) -> list[Score]:
    """Minus the completion's length as a share of max_chars (0 for empty, -1 at max_chars or longer)."""
    return [-min(len(completion_text(c)) / max_chars, 1.0) for c in completions]


_THINK = re.compile(r"\s*<think>(?P<thought>.*?)</think>(?P<answer>.*)", re.DOTALL)
_FENCED = re.compile(r"```(?:python|py)?[ \t]*\n(?P<code>.*?)```", re.DOTALL)


def think_format(completions: Sequence[Any], **_: Any) -> list[Score]:
    """1 when the completion is one `<think>...</think>` block of reasoning followed by an answer."""
    scores = []
    for completion in completions:
        text = completion_text(completion)
        found = _THINK.fullmatch(text)
        good = (
            found is not None
            and found["thought"].strip() != ""
            and found["answer"].strip() != ""
            and "<think>" not in found["answer"]
            and "</think>" not in found["answer"]
        )
        scores.append(float(good))
    return scores


def completion_code(text: str) -> str:
    """The Python a completion answers with: its last fenced code block, or the whole text."""
    blocks = _FENCED.findall(text)
    return blocks[-1] if blocks else text


def code_tests(
    completions: Sequence[Any],
    reference: Sequence[str | None],
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    **_: Any,
) -> list[Score]:
    """1 when the completion's code passes the example's tests (its reference: Python asserts run after
    the code), each in a sandboxed subprocess (ftkit/sandbox.py); None without tests."""
    from ftkit.sandbox import Limits, run_many

    wanted = [i for i, tests in enumerate(reference) if tests]
    programs = [completion_code(completion_text(completions[i])) + "\n\n" + str(reference[i]) for i in wanted]
    outcomes = run_many(programs, Limits(timeout_s=timeout_s, memory_mb=memory_mb)) if programs else []
    scores: list[Score] = [None] * len(completions)
    for index, outcome in zip(wanted, outcomes, strict=True):
        scores[index] = float(outcome.passed)
    return scores


def code_structure(completions: Sequence[Any], **_: Any) -> list[Score]:
    """1 for an answer whose code (a python block, or code-like text) parses as Python, 0.25 for code that
    does not parse, 0 for none: the `code` metric's parse rate, per completion, with no tests to run."""
    from ftkit.task_reports import extract_code, parses

    scores: list[Score] = []
    for completion in completions:
        code = extract_code(completion_text(completion))
        scores.append(0.0 if code is None else 1.0 if parses(code) else 0.25)
    return scores


@dataclass(frozen=True)
class Reward:
    function: Callable[..., list[Score]]
    description: str
    params: tuple[str, ...] = ()
    """Parameters it takes from the recipe's `params`."""
    required: tuple[str, ...] = ()


REWARDS: dict[str, Reward] = {
    "exact_match": Reward(exact_match, "the answer equals the reference (SQuAD normalization)"),
    "numeric_match": Reward(numeric_match, "the final number matches the reference's (#### or \\boxed{})"),
    "label_match": Reward(label_match, "the first word is the reference label (generative classification)"),
    "format_match": Reward(
        format_match, "the completion matches a regular expression", ("pattern",), ("pattern",)
    ),
    "length_penalty": Reward(length_penalty, "shorter completions score higher", ("max_chars",)),
    "think_format": Reward(think_format, "one <think>...</think> block of reasoning, then an answer"),
    "code_structure": Reward(
        code_structure, "the answer holds Python code that parses (0.25 for code that does not, 0 for none)"
    ),
    "code_tests": Reward(
        code_tests,
        "the completion's Python passes the reference's tests (sandboxed subprocess)",
        ("timeout_s", "memory_mb"),
    ),
}


TRAINER_ARGUMENTS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")
"""What TRL's GRPOTrainer passes every reward function by keyword, besides the dataset's columns."""
DATASET_COLUMNS = ("reference",)


def _check_signature(name: str, function: Callable[..., Any], params: dict[str, Any]) -> None:
    """The function accepts what the trainer passes (by keyword) and the recipe's params."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return  # a builtin or C function: nothing to inspect
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        raise UserError(
            f"reward {name!r} must take **kwargs: the trainer passes it {', '.join(TRAINER_ARGUMENTS)} and "
            f"the dataset's columns ({', '.join(DATASET_COLUMNS)}) by keyword"
        )
    given = {*TRAINER_ARGUMENTS, *DATASET_COLUMNS, *params}
    missing = [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is p.empty
        and p.name not in given
    ]
    if missing:
        raise UserError(
            f"reward {name!r} needs {', '.join(missing)}, which neither the trainer nor the recipe gives: "
            f"set them in the reward's params (grpo.reward_funcs: [{{name: {name}, params: {{...}}}}])"
        )
    if "completions" not in names:
        raise UserError(f"reward {name!r} must take a `completions` argument (one completion per score)")


def import_reward(name: str, params: dict[str, Any]) -> Callable[..., list[Score]]:
    """A user function from `package.module:function`, checked to accept the trainer's arguments.
    Modules are found from the working directory too (a `my_rewards.py` beside the recipe)."""
    module_name, _, attribute = name.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"reward {name!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # the user's module raised while importing
        raise UserError(
            f"reward {name!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise UserError(f"reward {name!r}: {module_name} has no function {attribute!r}")
    _check_signature(name, function, params)
    return partial(function, **params) if params else function


def resolve_reward(name: str, params: dict[str, Any]) -> Callable[..., list[Score]]:
    """A built-in reward bound to its params, or a user function imported from `module:function`."""
    if ":" in name:
        return import_reward(name, params)
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
