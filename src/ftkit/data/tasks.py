"""`stage: auto`: the stage chosen from what the training datasets' registry entries say they hold.

A corpus (formatting text, or an alpaca entry without a response column) trains with pt; answers
(instructions, questions, conversations, generative classification with its label prompt) with sft;
preference pairs (ranking) with dpo; labelled answers (kto_tag) with kto. Datasets of different tasks in
one recipe are an error naming them. The choice happens when the recipe is loaded, and `ftkit check`
says what was chosen and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.errors import UserError

AUTO = "auto"


def task_of(entry: dict[str, Any]) -> tuple[str, str]:
    """(what the entry holds, the stage that trains it)."""
    columns = entry.get("columns") or {}
    formatting = entry.get("formatting", "alpaca")
    if entry.get("ranking"):
        return "preference pairs", "dpo"
    if columns.get("kto_tag"):
        return "labelled answers", "kto"
    if formatting == "text" or (
        formatting == "alpaca" and columns.get("prompt") and "response" not in columns
    ):
        return "a text corpus", "pt"
    if formatting == "classification":
        return "classification (a label prompt, the label as the answer)", "sft"
    return "answers to prompts (instructions, questions, conversations)", "sft"


def task_rewards(entry: dict[str, Any]) -> list[str]:
    """The GRPO rewards an entry's task is scored with: its declared `rewards`, else label_match for
    generative classification."""
    if entry.get("rewards"):
        return list(entry["rewards"])
    return ["label_match"] if entry.get("formatting") == "classification" else []


def choose_rewards(data: dict[str, Any]) -> tuple[list[str], str | None]:
    """The rewards of the training datasets' tasks (in order, once each), and why; ([], None) when none
    declares one."""
    from ftkit.config.sections.data import DatasetRef, _as_refs
    from ftkit.data.registry import Registry

    registry = Registry(Path(data.get("dataset_dir", "data")))
    chosen: dict[str, list[str]] = {}
    for ref in _as_refs(data.get("train")):
        name = DatasetRef.model_validate(ref).name
        if name in registry.entries:
            for reward in task_rewards(registry.entries[name]):
                chosen.setdefault(reward, []).append(name)
    if not chosen:
        return [], None
    why = "; ".join(f"{reward} (the task of {', '.join(names)})" for reward, names in chosen.items())
    return list(chosen), f"grpo.reward_funcs from the datasets: {why}"


def choose_stage(data: dict[str, Any]) -> tuple[str, str]:
    """The stage for the recipe's `data` section, and why."""
    from ftkit.config.sections.data import DatasetRef, _as_refs
    from ftkit.data.registry import Registry

    registry = Registry(Path(data.get("dataset_dir", "data")))
    names = [DatasetRef.model_validate(ref).name for ref in _as_refs(data.get("train"))]
    if not names:
        raise UserError("stage auto chooses from the training datasets: set data.train")
    found = {}
    for name in names:
        if name not in registry.entries:
            raise UserError(f"stage auto: dataset {name!r} is not in {registry.path}")
        found[name] = task_of(registry.entries[name])
    stages = {stage for _, stage in found.values()}
    if len(stages) > 1:
        listed = "; ".join(f"{name}: {task} (stage {stage})" for name, (task, stage) in found.items())
        raise UserError(f"stage auto: the training datasets need different stages ({listed}); set stage")
    [stage] = stages
    tasks = sorted({task for task, _ in found.values()})
    return stage, f"stage auto: {', '.join(names)} hold{'s' if len(names) == 1 else ''} {' and '.join(tasks)}"
