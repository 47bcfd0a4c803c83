"""The stage table: every stage ftkit trains, one StageSpec each (stages/spec.py), declared in its own
module and listed here. Adding a stage is its module plus one entry in BUILTIN_STAGES.

Importing this package imports no trainer library: stages import TRL inside their functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftkit.data.formats import DATA_KINDS, check_entry, data_kind
from ftkit.errors import UserError
from ftkit.models.heads import is_encoder_decoder
from ftkit.stages import dpo, grpo, kto, orpo, pt, rm, sft, simpo
from ftkit.stages.spec import StageSpec
from ftkit.tables import Table

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.data.registry import DatasetSpec

BUILTIN_STAGES = (
    pt.STAGE,
    sft.STAGE,
    dpo.STAGE,
    kto.STAGE,
    orpo.STAGE,
    simpo.STAGE,
    rm.STAGE,
    grpo.STAGE,
)
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


def stage_for(recipe: Recipe) -> StageSpec:
    """The stage a recipe trains: its declaration, or that stage's encoder-decoder version when the model's
    config says is_encoder_decoder (the recipe's validation refused stages that have none)."""
    stage = get_stage(recipe.stage)
    if stage.encoder_decoder is not None and is_encoder_decoder(
        recipe.model.name_or_path, recipe.model.revision
    ):
        return stage.encoder_decoder
    return stage


def check_dataset(spec: DatasetSpec, stage: StageSpec) -> None:
    """The registry entry is usable as it is (formats' check_entry) and holds the kind of examples
    `stage` trains on; otherwise a user error naming the stages that take it."""
    check_entry(spec)
    kind = data_kind(spec)
    if kind != stage.data:
        takes = [name for name, other in STAGES.items() if other.data == kind]
        raise UserError(
            f"dataset {spec.name!r} holds {DATA_KINDS[kind]}; stage {stage.name} trains on "
            f"{DATA_KINDS[stage.data]}. Use a dataset of that kind"
            + (f", or a stage that takes this one: {', '.join(takes)}" if takes else "")
        )


def names_with(flag: str) -> list[str]:
    """The stages whose declaration sets `flag` (e.g. packing), in table order."""
    return [name for name, spec in STAGES.items() if getattr(spec, flag)]
