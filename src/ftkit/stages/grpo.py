"""Group relative policy optimization on TRL's GRPOTrainer.

Prompts are rendered with the recipe's chat template (generation prompt included), completions are
sampled until the template's stop tokens, and each reward (stages/rewards.py) scores them with the
dataset's `reference` answer at hand; the rewards' weights combine them.
"""

from __future__ import annotations

from typing import Any

from ftkit.config import Recipe
from ftkit.errors import UserError
from ftkit.models.runtime import Runtime
from ftkit.stages.common import trl_arguments
from ftkit.stages.rewards import resolve_reward
from ftkit.stages.runner import Stage, TrainerInputs


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import GRPOConfig

    grpo = recipe.grpo
    try:
        return GRPOConfig(
            **trl_arguments(recipe, runtime),
            num_generations=grpo.num_generations,
            max_completion_length=grpo.max_completion_length,
            beta=grpo.beta,
            temperature=grpo.temperature,
            reward_weights=[reward.weight for reward in grpo.reward_funcs],
            remove_unused_columns=False,  # the rewards read the dataset's reference column
        )
    except ValueError as exc:
        # The batch rules depend on the process count, known only now under nproc_per_node: auto.
        raise UserError(
            f"stage grpo cannot run with these batch sizes: {exc} Adjust train.per_device_train_batch_size, "
            "train.gradient_accumulation_steps, train.per_device_eval_batch_size or grpo.num_generations."
        ) from None


def reward_functions(recipe: Recipe) -> list[Any]:
    """Callables for built-ins and imported functions; reward models go to TRL as paths."""
    return [
        reward.model if reward.model is not None else resolve_reward(reward.name or "", reward.params)
        for reward in recipe.grpo.reward_funcs
    ]


def trainer(inputs: TrainerInputs) -> Any:
    from trl import GRPOTrainer

    from ftkit.models.special_tokens import stop_token_ids

    tokenizer = inputs.tokenizer
    tokenizer.padding_side = "left"  # completions are appended to left-padded prompts
    # Sampling ends at the template's end-of-turn token, not only at the tokenizer's eos.
    inputs.args.generation_kwargs = {"eos_token_id": stop_token_ids(tokenizer, inputs.template)}
    return GRPOTrainer(
        model=inputs.model,
        reward_funcs=reward_functions(inputs.recipe),
        args=inputs.args,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval,
        processing_class=tokenizer,
    )


STAGE = Stage(arguments, trainer)
