"""The stage table: every stage ftkit trains, one StageSpec each (stages/spec.py), declared in its own
module and listed here. Adding a stage is its module plus one entry in BUILTIN_STAGES.

Importing this package imports no trainer library: stages import TRL inside their functions.
"""

from __future__ import annotations

import difflib

from ftkit.errors import UserError
from ftkit.stages import dpo, grpo, pt, sft
from ftkit.stages.spec import StageSpec

BUILTIN_STAGES = (pt.STAGE, sft.STAGE, dpo.STAGE, grpo.STAGE)
STAGES: dict[str, StageSpec] = {}


def register_stage(spec: StageSpec) -> StageSpec:
    """Add a stage to the table; a name that is taken is a programming error."""
    if not isinstance(spec, StageSpec):
        raise TypeError(f"register_stage takes a StageSpec, got {spec!r}")
    if spec.name in STAGES:
        raise ValueError(f"stage {spec.name!r} is registered twice")
    STAGES[spec.name] = spec
    return spec


for _builtin in BUILTIN_STAGES:
    register_stage(_builtin)


def get_stage(name: str) -> StageSpec:
    """The declaration of stage `name`; an unknown name is a user error with the choices."""
    if name not in STAGES:
        close = difflib.get_close_matches(name, STAGES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"unknown stage {name!r}{hint}; stages: {', '.join(STAGES)}")
    return STAGES[name]


def names_with(flag: str) -> list[str]:
    """The stages whose declaration sets `flag` (e.g. packing), in table order."""
    return [name for name, spec in STAGES.items() if getattr(spec, flag)]
