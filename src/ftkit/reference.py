"""Generate the recipe and registry reference (docs/recipe-reference.md) from the schemas, so the docs
cannot drift from the code.

    python -m ftkit.reference > docs/recipe-reference.md
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ftkit.config.recipe import recipe_model
from ftkit.config.types import models_in
from ftkit.data.formats import FORMATS
from ftkit.data.registry import DatasetSpec
from ftkit.metrics import METRICS
from ftkit.stages import STAGES
from ftkit.stages.rewards import REWARDS


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "see section"
    return f"`{value!r}`" if value not in (None, [], {}) else f"`{value}`"


def _table(model: type[BaseModel]) -> list[str]:
    lines = [
        f"### {model.__name__}",
        "",
        (model.__doc__ or "").strip(),
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        description = (field.description or "").replace("\n", " ").replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    return [*lines, ""]


def _section(root: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    lines: list[str] = []
    queue: list[type[BaseModel]] = [root]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += _table(model)
        for field in model.model_fields.values():
            queue += [m for m in models_in(field.annotation) if m not in seen]
    return lines


def _stages() -> list[str]:
    lines = ["| stage | what it trains | data | section | chat template |", "|---|---|---|---|---|"]
    for name, spec in STAGES.items():
        data = spec.shape.name + {
            "ranking": " (ranking: true entries)",
            "feedback": " (kto_tag entries)",
        }.get(spec.data, "")
        data += ", packing" if spec.packing else ""
        section = f"`{name}:`" if spec.section is not None else "—"
        lines.append(
            f"| `{name}` | {spec.description} | {data} | {section} | {'needed' if spec.needs_template else '—'} |"
        )
    return [*lines, ""]


def _metrics() -> list[str]:
    lines = ["| metric | scores | from |", "|---|---|---|"]
    for name, metric in METRICS.items():
        source = "generated answers" if metric.generated is not None else "the answers' likelihood"
        lines.append(f"| `{name}` | {metric.description} | {source} |")
    return [*lines, ""]


def _rewards() -> list[str]:
    lines = ["| reward | scores | params |", "|---|---|---|"]
    for name, reward in REWARDS.items():
        lines.append(f"| `{name}` | {reward.description} | {', '.join(reward.params) or '—'} |")
    return [*lines, ""]


def _formats() -> list[str]:
    lines = ["| formatting | rows | preference data |", "|---|---|---|"]
    for name, fmt in FORMATS.items():
        lines.append(f"| `{name}` | {fmt.description} | {'with ranking: true' if fmt.ranking else '—'} |")
    return [*lines, ""]


def reference() -> str:
    seen: set[type[BaseModel]] = set()
    lines = [
        "# Recipe reference",
        "",
        "Generated from the schemas by `make docs` (`python -m ftkit.reference`); do not edit by hand.",
        "",
        "## Recipes",
        "",
        "Every section rejects unknown keys. Relative paths are relative to the working directory, except",
        "`base:`, which is relative to the recipe file that names it.",
        "",
        "### Stages",
        "",
        "The stage table (`src/ftkit/stages/`): each stage's data, its own recipe section, whether it needs",
        "`model.template`.",
        "",
        *_stages(),
        "### Eval metrics",
        "",
        "The metric table (`src/ftkit/metrics.py`): what `eval.metrics` may name. A metric and a GRPO reward of",
        "the same name score an answer the same way.",
        "",
        *_metrics(),
        "### GRPO rewards",
        "",
        "The built-in rewards (`src/ftkit/stages/rewards.py`) for `grpo.reward_funcs`, besides",
        "`package.module:function` and `{model: path}`.",
        "",
        *_rewards(),
        *_section(recipe_model(), seen),
        "## Dataset registry entries",
        "",
        "Entries of `<data.dataset_dir>/dataset_info.json`, keyed by dataset name. LLaMA-Factory's fields are",
        "accepted as they are; `prompt_format`, `response_format`, `system`, `where` and `bidirectional` are",
        "ftkit's. Unknown fields are errors.",
        "",
        "### Formats",
        "",
        "The format table (`src/ftkit/data/formats/`): what `formatting` may name.",
        "",
        *_formats(),
        *_section(DatasetSpec, seen),
    ]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
