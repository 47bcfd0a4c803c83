"""Continued pretraining (or pretraining from scratch with model.from_scratch): next-token loss on every
token of documents that the data pipeline concatenated and cut into max_length blocks."""

from __future__ import annotations

from typing import Any

from ftkit.config import Recipe
from ftkit.launch import LaunchContext
from ftkit.models.runtime import Runtime
from ftkit.stages.common import trl_arguments
from ftkit.stages.fused_head import use_compact_lm_head
from ftkit.stages.runner import Stage, TrainerInputs, run_stage


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import SFTConfig

    # Blocks are already max_length long: no truncation and no packing on top.
    return SFTConfig(**trl_arguments(recipe, runtime), max_length=None, packing=False)


def trainer(inputs: TrainerInputs) -> Any:
    from trl import SFTTrainer

    use_compact_lm_head()
    return SFTTrainer(
        model=inputs.model,
        args=inputs.args,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval,
        processing_class=inputs.tokenizer,
    )


STAGE = Stage(arguments, trainer)


def run(recipe: Recipe, context: LaunchContext) -> None:
    run_stage(recipe, context, STAGE)
