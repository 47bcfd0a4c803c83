"""Odds-ratio preference optimization on TRL's ORPOTrainer (experimental upstream): supervised loss on
the chosen answer plus a log-odds-ratio penalty on the rejected one, in one stage and without a reference
model (no sft stage needed first, no second copy of the weights)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ftkit.config.sections.base import Section
from ftkit.data.processors import process_dpo
from ftkit.data.shapes import PREFERENCE_PAIRS
from ftkit.stages.common import trainer_inputs, trl_arguments
from ftkit.stages.scores import score_pairs
from ftkit.stages.spec import StageSpec, TrainerInputs

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime


class OrpoConfig(Section):
    """ORPO's loss setting (TRL's ORPOConfig)."""

    beta: float = Field(0.1, gt=0)
    """Weight of the odds-ratio term against the chosen answers' supervised loss (the paper's lambda)."""


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig(
        **trl_arguments(recipe, runtime),
        dataset_num_proc=recipe.data.num_proc,
        max_length=recipe.data.max_length,
        remove_unused_columns=False,  # the collator reads the pair columns tokenize_row lays out
        beta=recipe.orpo.beta,
    )


def trainer(inputs: TrainerInputs) -> Any:
    from trl.experimental.orpo import ORPOTrainer

    from ftkit.stages.reference_free import pretokenized

    return pretokenized(ORPOTrainer)(**trainer_inputs(inputs))


STAGE = StageSpec(
    name="orpo",
    description="odds-ratio preference optimization: sft and preference in one, no reference model",
    process=process_dpo,
    shape=PREFERENCE_PAIRS,
    arguments=arguments,
    trainer=trainer,
    data="ranking",
    section=OrpoConfig,
    evaluate=score_pairs,
    console=("loss", "rewards/margins", "rewards/accuracies", "learning_rate"),
    signal=("rewards/margins", True),
)
