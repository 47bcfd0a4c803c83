"""Reward-model training on TRL's RewardTrainer: a one-output score head on the causal LM's body (models/
heads.py), trained with the pairwise loss -log sigmoid(score(chosen) - score(rejected)) on the same
ranking data as dpo.

The score is read at each sequence's last token, so a pair is scored as the whole conversation ending
with the answer's end-of-turn marker, exactly as the chat template renders it. The trained model is a
grpo reward (`grpo.reward_funcs: [{model: <run or export>}]`), scored on held-out pairs by `ftkit eval`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ftkit.config.sections.base import Section
from ftkit.data.processors import process_dpo
from ftkit.data.shapes import PREFERENCE_PAIRS
from ftkit.models.heads import REWARD
from ftkit.stages.common import trainer_inputs, trl_arguments
from ftkit.stages.scores import score_rewards
from ftkit.stages.spec import StageSpec, TrainerInputs

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime


class RmConfig(Section):
    """Reward-model settings (TRL's RewardConfig)."""

    center_rewards_coefficient: float | None = Field(None, ge=0)
    """Adds this times the mean squared score to the loss, keeping scores centered on 0 (useful when
    rewards from several models are added up); off by default."""


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import RewardConfig

    return RewardConfig(
        **trl_arguments(recipe, runtime),
        dataset_num_proc=recipe.data.num_proc,
        max_length=recipe.data.max_length,
        center_rewards_coefficient=recipe.rm.center_rewards_coefficient,
    )


def whole_sequences(batch: dict[str, list]) -> dict[str, list]:
    """ftkit's pair (shared prompt, two answers) as the two full sequences the score head reads."""
    prompts = batch["prompt_ids"]
    return {
        "chosen_ids": [p + c for p, c in zip(prompts, batch["chosen_ids"], strict=True)],
        "rejected_ids": [p + r for p, r in zip(prompts, batch["rejected_ids"], strict=True)],
    }


def trainer(inputs: TrainerInputs) -> Any:
    from trl import RewardTrainer

    class PretokenizedRewardTrainer(RewardTrainer):
        """RewardTrainer on ftkit's pair ids: TRL would tokenize each text conversation again."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, name: str) -> Any:
            if "prompt_ids" not in dataset.column_names:  # prepared already (evaluate() prepares again)
                return dataset
            return dataset.map(
                whole_sequences, batched=True, remove_columns=["prompt_ids"], desc=f"pairs of {name}"
            )

    return PretokenizedRewardTrainer(**trainer_inputs(inputs))


STAGE = StageSpec(
    name="rm",
    description="reward model: a score head trained to rank the chosen answer above the rejected one",
    process=process_dpo,
    shape=PREFERENCE_PAIRS,
    arguments=arguments,
    trainer=trainer,
    head=REWARD,
    data="ranking",
    section=RmConfig,
    evaluate=score_rewards,
    console=("loss", "accuracy", "margin", "learning_rate"),
    signal=("accuracy", True),
)
