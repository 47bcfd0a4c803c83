"""Group relative policy optimization on TRL's GRPOTrainer.

Prompts are rendered with the recipe's chat template (generation prompt included), completions are
sampled until the template's stop tokens, and each reward (stages/rewards.py) scores them with the
dataset's `reference` answer at hand; the rewards' weights combine them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ftkit.config.sections.base import ConfigConflict, Section
from ftkit.data.processors import adds_bos, process_grpo
from ftkit.data.shapes import PROMPTS
from ftkit.errors import UserError
from ftkit.stages.common import trainer_inputs, trl_arguments
from ftkit.stages.rewards import resolve_reward
from ftkit.stages.spec import StageSpec, TrainerInputs

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime


class RewardRef(Section):
    """A reward: a built-in (`name: exact_match`), a function by import path (`name: my_pkg.rewards:score`),
    or a sequence-classification reward model (`model: path/or/hub-id`)."""

    name: str | None = Field(None, min_length=1)
    """Built-in reward name or `package.module:function`."""
    model: str | None = Field(None, min_length=1)
    """Path or hub id of a reward model (sequence classification with one output)."""
    weight: float = 1.0
    """Weight of this reward in the total reward."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Options of a built-in reward, e.g. {pattern: "^<think>"} for format_match."""

    @model_validator(mode="after")
    def _one_source(self) -> RewardRef:
        if (self.name is None) == (self.model is None):
            raise ValueError("a reward has either a name (built-in or module:function) or a model, not both")
        if self.model is not None and self.params:
            raise ValueError("params apply to built-in rewards, not to a reward model")
        return self


class GrpoConfig(Section):
    """Sampling and loss settings for GRPO (TRL's GRPOTrainer)."""

    reward_funcs: list[RewardRef] = Field(default_factory=list)
    """Rewards scored on every completion: names, or {name, weight}."""
    num_generations: int = Field(8, ge=2)
    """Completions sampled per prompt; the advantage compares completions within this group."""
    max_completion_length: int = Field(256, ge=1)
    """Maximum tokens sampled per completion."""
    beta: float = Field(0.04, ge=0)
    """KL penalty against the reference model; 0 skips loading the reference model."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature of the completions."""
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = "dapo"
    """How the token losses are combined (TRL's loss_type). dapo (TRL's default): averaged over the active
    tokens of the whole accumulated batch, no length bias; grpo: per sequence, then over sequences (the 2024
    paper; favors short right answers and long wrong ones); dr_grpo: divided by a constant
    (max_completion_length), no length bias (use with scale_rewards: none); bnpo: over the active tokens of
    each micro-batch; cispo: clips the importance weights, not the update (MiniMax-M1; epsilon_high about
    5); sapo: a soft, temperature-gated clip instead of a hard one; luspo: GSPO scaled by sequence length
    (needs importance_sampling_level: sequence); vespo: a smooth sequence-level weighting instead of
    clipping."""
    importance_sampling_level: Literal["token", "sequence"] = "token"
    """token: one importance ratio per token (GRPO); sequence: one per completion, the mean of its tokens'
    log-ratios (GSPO), steadier for sequence-level rewards and mixture-of-experts models."""
    epsilon: float = Field(0.2, gt=0)
    """Lower clipping range of the importance ratio (1 - epsilon)."""
    epsilon_high: float | None = Field(None, gt=0)
    """Upper clipping range (1 + epsilon_high); default epsilon. DAPO's asymmetric "clip-higher" uses 0.28
    to keep exploring tokens of low probability."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Divide the advantages by the rewards' standard deviation within each group (GRPO), over the whole
    batch, or not at all (Dr. GRPO: no bias toward questions that are too easy or too hard)."""
    mask_truncated_completions: bool = False
    """Leave completions cut at max_completion_length out of the loss (DAPO): an unfinished answer is not
    a wrong one."""
    num_iterations: int = Field(1, ge=1)
    """Optimization passes over each generated batch (the algorithm's mu); above 1 the importance ratio and
    its clipping come into play, and generation is amortized over several updates."""

    generation: Literal["transformers", "vllm_colocate", "vllm_server"] = "transformers"
    """What samples the completions: transformers' generate in the training process; vllm_colocate: a
    vLLM engine in each training process, sharing its GPU (much faster sampling; needs vLLM and a CUDA
    GPU); vllm_server: a separate `trl vllm-serve --model <base>` on other GPUs, which receives the
    weights after each step."""
    vllm_server_url: str | None = None
    """vllm_server: the server's address (TRL's default: http://0.0.0.0:8000)."""
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    """vllm_colocate: the share of the GPU's memory vLLM reserves beside training."""

    @model_validator(mode="after")
    def _vllm_settings(self) -> GrpoConfig:
        defaults = {"vllm_server_url": None, "vllm_gpu_memory_utilization": 0.3}
        for key, mode in (
            ("vllm_server_url", "vllm_server"),
            ("vllm_gpu_memory_utilization", "vllm_colocate"),
        ):
            if getattr(self, key) != defaults[key] and self.generation != mode:
                raise ConfigConflict(
                    (f"grpo.{key}", "grpo.generation"), f"grpo.{key} applies to grpo.generation: {mode}"
                )
        return self

    @model_validator(mode="after")
    def _sequence_losses(self) -> GrpoConfig:
        if self.loss_type == "luspo" and self.importance_sampling_level != "sequence":
            raise ConfigConflict(
                ("grpo.loss_type", "grpo.importance_sampling_level"),
                "grpo.loss_type: luspo is a sequence-level loss: set grpo.importance_sampling_level: sequence",
            )
        return self

    @field_validator("reward_funcs", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value


def check(recipe: Recipe) -> None:
    """Rewards are required, and TRL's batch rule: every generation batch holds whole groups of
    num_generations completions. With nproc_per_node: auto the process count is known at launch, where
    the trainer checks it again."""
    grpo, train = recipe.grpo, recipe.train
    if not grpo.reward_funcs:
        raise ConfigConflict(
            ("grpo.reward_funcs", "stage"),
            "stage grpo needs at least one reward: set grpo.reward_funcs (e.g. [exact_match]), or declare "
            "the task's rewards in the training dataset's registry entry (rewards: [numeric_match])",
        )
    processes = recipe.distributed.nproc_per_node if isinstance(recipe.distributed.nproc_per_node, int) else 1
    generations = grpo.num_generations
    batch = train.per_device_train_batch_size * train.gradient_accumulation_steps * processes
    if batch % generations:
        raise ConfigConflict(
            ("grpo.num_generations", "train.per_device_train_batch_size"),
            f"stage grpo samples grpo.num_generations={generations} completions per prompt, so "
            "per_device_train_batch_size x gradient_accumulation_steps x nproc_per_node "
            f"({batch}) must be a multiple of it",
        )
    eval_batch = (train.per_device_eval_batch_size or 1) * processes
    if train.eval_strategy != "no" and eval_batch % generations:
        raise ConfigConflict(
            ("grpo.num_generations", "train.per_device_eval_batch_size"),
            f"stage grpo evaluates grpo.num_generations={generations} completions per prompt, so "
            f"per_device_eval_batch_size x nproc_per_node ({eval_batch}) must be a multiple of it",
        )


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
            loss_type=grpo.loss_type,
            importance_sampling_level=grpo.importance_sampling_level,
            epsilon=grpo.epsilon,
            epsilon_high=grpo.epsilon_high,
            scale_rewards=grpo.scale_rewards,
            mask_truncated_completions=grpo.mask_truncated_completions,
            num_iterations=grpo.num_iterations,
            **vllm_arguments(grpo),
            reward_weights=[reward.weight for reward in grpo.reward_funcs],
            remove_unused_columns=False,  # the rewards read the dataset's reference column
        )
    except ValueError as exc:
        # The batch rules depend on the process count, known only now under nproc_per_node: auto.
        raise UserError(
            f"stage grpo cannot run with these batch sizes: {exc} Adjust train.per_device_train_batch_size, "
            "train.gradient_accumulation_steps, train.per_device_eval_batch_size or grpo.num_generations."
        ) from None


def vllm_arguments(grpo: GrpoConfig) -> dict[str, Any]:
    """TRL's vLLM settings for grpo.generation (nothing for transformers)."""
    if grpo.generation == "transformers":
        return {}
    found: dict[str, Any] = {"use_vllm": True, "vllm_mode": grpo.generation.removeprefix("vllm_")}
    if grpo.generation == "vllm_colocate":
        found["vllm_gpu_memory_utilization"] = grpo.vllm_gpu_memory_utilization
    elif grpo.vllm_server_url is not None:
        found["vllm_server_base_url"] = grpo.vllm_server_url
    return found


def reward_functions(recipe: Recipe, tokenizer: Any, template: Any) -> list[Any]:
    """Callables for built-ins, imported functions and reward models (stages/reward_model.py)."""
    from ftkit.stages.reward_model import reward_model_function
    from ftkit.templates import token_variables

    stops = template.stop_strings(token_variables(tokenizer))
    end_of_turn = stops[0] if stops else (tokenizer.eos_token or "")
    # The prompts lost the template's BOS where the tokenizer adds it itself (process_grpo): give it back.
    bos = tokenizer.bos_token if adds_bos(tokenizer) else ""
    return [
        reward_model_function(reward.model, end_of_turn, bos)
        if reward.model is not None
        else resolve_reward(reward.name or "", reward.params)
        for reward in recipe.grpo.reward_funcs
    ]


def trainer(inputs: TrainerInputs) -> Any:
    from trl import GRPOTrainer

    from ftkit.models.special_tokens import stop_token_ids

    tokenizer = inputs.tokenizer
    tokenizer.padding_side = "left"  # completions are appended to left-padded prompts
    # Sampling ends at the template's end-of-turn token, not only at the tokenizer's eos (vLLM's sampling
    # parameters name them stop_token_ids).
    stops = stop_token_ids(tokenizer, inputs.template)
    vllm = inputs.recipe.grpo.generation != "transformers"
    inputs.args.generation_kwargs = {"stop_token_ids": stops} if vllm else {"eos_token_id": stops}
    return GRPOTrainer(
        **trainer_inputs(inputs), reward_funcs=reward_functions(inputs.recipe, tokenizer, inputs.template)
    )


STAGE = StageSpec(
    name="grpo",
    description="group relative policy optimization: sampled completions scored by rewards",
    process=process_grpo,
    shape=PROMPTS,
    arguments=arguments,
    trainer=trainer,
    section=GrpoConfig,
    check=check,
    console=("reward", "reward_std", "rewards/*/mean", "completions/mean_length", "kl", "learning_rate"),
    signal=("reward", True),
)
