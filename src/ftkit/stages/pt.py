"""Continued pretraining (or pretraining from scratch with model.from_scratch): next-token loss on every
token of documents that the data pipeline concatenated and cut into max_length blocks."""

from __future__ import annotations

from typing import Any

from ftkit.config import Recipe
from ftkit.models.runtime import Runtime
from ftkit.stages import sft
from ftkit.stages.common import trl_arguments
from ftkit.stages.runner import Stage


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import SFTConfig

    # Blocks are already max_length long: no truncation and no packing on top.
    return SFTConfig(**trl_arguments(recipe, runtime), max_length=None, packing=False)


# The blocks are labeled like SFT examples: the same trainer runs them.
STAGE = Stage(arguments, sft.trainer)
