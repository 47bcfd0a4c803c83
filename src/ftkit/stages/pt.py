"""Continued pretraining (or pretraining from scratch with model.from_scratch): next-token loss on every
token of documents that the data pipeline concatenated and cut into max_length blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.data.processors import chunk_blocks, process_pt
from ftkit.data.shapes import TOKENS
from ftkit.stages import sft
from ftkit.stages.common import trl_arguments
from ftkit.stages.spec import StageSpec

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import SFTConfig

    # Blocks are already max_length long: no truncation and no packing on top.
    return SFTConfig(**trl_arguments(recipe, runtime), max_length=None, packing=False)


STAGE = StageSpec(
    name="pt",
    description="language modeling on documents cut into max_length blocks, every token trained",
    process=process_pt,
    shape=TOKENS,
    arguments=arguments,
    trainer=sft.trainer,  # the blocks are labeled like SFT examples: the same trainer runs them
    needs_template=False,
    packing=True,
    streaming=True,
    regroup=chunk_blocks,
    console=("loss", "grad_norm", "learning_rate", "mean_token_accuracy"),
)
