"""The stage table: every stage ftkit trains, one StageSpec each (stages/spec.py), declared in its own
module and listed here. Adding a stage is its module plus one entry in BUILTIN_STAGES.

Importing this package imports no trainer library: stages import TRL inside their functions.
"""

from __future__ import annotations

from ftkit.stages import dpo, grpo, pt, sft
from ftkit.stages.spec import StageSpec
from ftkit.tables import Table

BUILTIN_STAGES = (pt.STAGE, sft.STAGE, dpo.STAGE, grpo.STAGE)
STAGES: Table[StageSpec] = Table("stage")


def register_stage(spec: StageSpec) -> StageSpec:
    """Add a stage to the table; a name that is taken is a programming error."""
    if not isinstance(spec, StageSpec):
        raise TypeError(f"register_stage takes a StageSpec, got {spec!r}")
    return STAGES.register(spec)


for _builtin in BUILTIN_STAGES:
    register_stage(_builtin)


def get_stage(name: str) -> StageSpec:
    """The declaration of stage `name`; an unknown name is a user error with the choices."""
    return STAGES.lookup(name)


def names_with(flag: str) -> list[str]:
    """The stages whose declaration sets `flag` (e.g. packing), in table order."""
    return [name for name, spec in STAGES.items() if getattr(spec, flag)]
