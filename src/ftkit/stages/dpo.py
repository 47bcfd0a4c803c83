"""Direct preference optimization on TRL's DPOTrainer, fed with ftkit's prompt/chosen/rejected token ids.

With LoRA the reference model is the base model with the adapter switched off (TRL does this for a
PEFT model); with full or freeze training TRL keeps a frozen copy of the starting weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

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

LOSSES = Literal[
    "sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down"
]


class DpoConfig(Section):
    """Loss settings for DPO (TRL's DPOTrainer). The reference model is the base model: with LoRA, the
    adapter switched off (no second copy in memory); otherwise a frozen copy of the starting weights."""

    beta: float = Field(0.1, gt=0)
    """Strength of the implicit KL constraint: higher stays closer to the reference model."""
    loss_type: LOSSES = "sigmoid"
    """sigmoid is the DPO paper's loss; the others are its published variants (see TRL's DPOConfig)."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """Assumed share of flipped preference labels (conservative DPO, robust)."""


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import DPOConfig

    dpo = recipe.dpo
    return DPOConfig(
        **trl_arguments(recipe, runtime),
        dataset_num_proc=recipe.data.num_proc,
        max_length=recipe.data.max_length,
        beta=dpo.beta,
        loss_type=[dpo.loss_type],
        label_smoothing=dpo.label_smoothing,
    )


def trainer(inputs: TrainerInputs) -> Any:
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """DPOTrainer on ftkit's prompt_ids/chosen_ids/rejected_ids: TRL would re-tokenize prompt and answers
        separately from text; ftkit's ids come from one tokenization of each whole conversation."""

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset

    return PretokenizedDPOTrainer(**trainer_inputs(inputs))


STAGE = StageSpec(
    name="dpo",
    description="direct preference optimization on chosen/rejected answers",
    process=process_dpo,
    shape=PREFERENCE_PAIRS,
    arguments=arguments,
    trainer=trainer,
    data="ranking",
    section=DpoConfig,
    evaluate=score_pairs,
    console=("loss", "rewards/margins", "rewards/accuracies", "learning_rate"),
    signal=("rewards/margins", True),
)
