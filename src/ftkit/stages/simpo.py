"""Simple preference optimization on TRL's CPOTrainer (experimental upstream) with its simpo loss: the
length-normalized log-likelihood is the implicit reward, with a target margin, and no reference model.
sft_weight adds the chosen answers' supervised loss (CPO-SimPO)."""

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


class SimpoConfig(Section):
    """SimPO's loss settings (TRL's CPOConfig with loss_type simpo)."""

    beta: float = Field(2.0, gt=0)
    """Scale of the reward (the average log-likelihood per answer token); the paper uses 2 to 2.5."""
    gamma: float = Field(0.5, ge=0)
    """Target reward margin between chosen and rejected answers."""
    sft_weight: float = Field(0.0, ge=0)
    """Weight of the chosen answers' supervised loss added to SimPO's (CPO-SimPO); 0 is plain SimPO."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """Assumed share of flipped preference labels."""


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl.experimental.cpo import CPOConfig

    simpo = recipe.simpo
    return CPOConfig(
        **trl_arguments(recipe, runtime),
        dataset_num_proc=recipe.data.num_proc,
        max_length=recipe.data.max_length,
        remove_unused_columns=False,  # the collator reads the pair columns tokenize_row lays out
        loss_type="simpo",
        beta=simpo.beta,
        simpo_gamma=simpo.gamma,
        cpo_alpha=simpo.sft_weight,
        label_smoothing=simpo.label_smoothing,
    )


def trainer(inputs: TrainerInputs) -> Any:
    from trl.experimental.cpo import CPOTrainer

    from ftkit.stages.reference_free import pretokenized

    return pretokenized(CPOTrainer)(**trainer_inputs(inputs))


STAGE = StageSpec(
    name="simpo",
    description="simple preference optimization: length-normalized rewards with a margin, no reference model",
    process=process_dpo,
    shape=PREFERENCE_PAIRS,
    arguments=arguments,
    trainer=trainer,
    data="ranking",
    section=SimpoConfig,
    evaluate=score_pairs,
    console=("loss", "rewards/margins", "rewards/accuracies", "learning_rate"),
    signal=("rewards/margins", True),
)
