"""Kahneman-Tversky optimization on TRL's KTOTrainer: single answers labelled desirable or not (unpaired
feedback, LLaMA-Factory's kto_tag datasets), fed with ftkit's prompt_ids/completion_ids.

The KL reference point is estimated from mismatched pairs: each answer with the previous example's prompt
inside a batch, so TRL reads the data in order. ftkit shuffles the training split with the seed before
those pairs are formed (TRL would otherwise train in dataset order).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ftkit.config.sections.base import ConfigConflict, Section
from ftkit.data.processors import process_kto
from ftkit.data.shapes import FEEDBACK
from ftkit.stages.common import trainer_inputs, trl_arguments
from ftkit.stages.scores import score_feedback
from ftkit.stages.spec import StageSpec, TrainerInputs

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime

log = logging.getLogger(__name__)


class KtoConfig(Section):
    """Loss settings for KTO (TRL's KTOTrainer). The reference model is the starting model: with LoRA, the
    adapter as initialized; otherwise a frozen copy of the starting weights."""

    beta: float = Field(0.1, gt=0)
    """Strength of the implicit KL constraint: higher stays closer to the reference model."""
    desirable_weight: float = Field(1.0, gt=0)
    """Weight of the desirable answers' loss. With unbalanced data, keep desirable_weight x #desirable
    between 1 and 4/3 of undesirable_weight x #undesirable (the KTO paper's advice; TRL warns otherwise)."""
    undesirable_weight: float = Field(1.0, gt=0)
    """Weight of the undesirable answers' loss."""
    loss_type: Literal["kto", "apo_zero_unpaired"] = "kto"
    """kto is the paper's loss; apo_zero_unpaired (anchored preference optimization) needs no KL estimate."""


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import KTOConfig

    kto = recipe.kto
    return KTOConfig(
        **trl_arguments(recipe, runtime)
        # The KL estimate pairs neighbours of a fixed order; the order is shuffled by the trainer below.
        | {"train_sampling_strategy": "sequential"},
        dataset_num_proc=recipe.data.num_proc,
        max_length=recipe.data.max_length,
        beta=kto.beta,
        desirable_weight=kto.desirable_weight,
        undesirable_weight=kto.undesirable_weight,
        loss_type=kto.loss_type,
    )


def trainer(inputs: TrainerInputs) -> Any:
    from trl import KTOTrainer

    class PretokenizedKTOTrainer(KTOTrainer):
        """KTOTrainer on ftkit's prompt_ids/completion_ids/label: TRL would extract the prompt from text and
        tokenize prompt and answer separately."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, name: str) -> Any:
            if name == "train":
                check_balance(dataset["label"], args.desirable_weight, args.undesirable_weight)
                dataset = dataset.shuffle(seed=args.seed)
            if not self.calculate_KL:
                return dataset
            size = args.per_device_train_batch_size

            def mismatched(batch: dict[str, list]) -> dict[str, list]:
                # Each answer beside its batch neighbour's prompt: the KL term's sample (TRL's construction).
                answers = batch["completion_ids"]
                return {"KL_completion_ids": answers[-1:] + answers[:-1]}

            return dataset.map(mismatched, batched=True, batch_size=size, desc=f"KL pairs of {name}")

    return PretokenizedKTOTrainer(**trainer_inputs(inputs))


def check_balance(labels: list[bool], desirable_weight: float, undesirable_weight: float) -> None:
    """Warn when one kind of answer is missing, or when the weights do not balance the two kinds (the KTO
    paper: desirable_weight x #desirable within 1 to 4/3 of undesirable_weight x #undesirable)."""
    desirable = sum(1 for label in labels if label)
    undesirable = len(labels) - desirable
    if not desirable or not undesirable:
        missing = "undesirable" if desirable else "desirable"
        log.warning(
            "the training data has no %s answers: kto then only moves the others against the reference, "
            "and reports no margin between the two kinds",
            missing,
        )
        return
    ratio = (desirable * desirable_weight) / (undesirable * undesirable_weight)
    if not 1 <= ratio <= 4 / 3:
        low = undesirable * undesirable_weight / desirable
        log.warning(
            "%d desirable and %d undesirable answers with weights %g and %g: set kto.desirable_weight "
            "between %.2f and %.2f to balance them (the KTO paper's advice)",
            desirable,
            undesirable,
            desirable_weight,
            undesirable_weight,
            low,
            low * 4 / 3,
        )


def check(recipe: Recipe) -> None:
    train = recipe.train
    if recipe.kto.loss_type == "kto" and train.per_device_train_batch_size < 2:
        raise ConfigConflict(
            "train.per_device_train_batch_size",
            "kto estimates its KL reference from the other answers of a batch: set "
            "train.per_device_train_batch_size to 2 or more (or kto.loss_type: apo_zero_unpaired)",
        )
    if train.group_by_length:
        raise ConfigConflict(
            "train.group_by_length",
            "kto reads its (shuffled) data in order to pair each answer with a neighbour's prompt; "
            "remove train.group_by_length",
        )


STAGE = StageSpec(
    name="kto",
    description="Kahneman-Tversky optimization on answers labelled desirable or undesirable",
    process=process_kto,
    shape=FEEDBACK,
    arguments=arguments,
    trainer=trainer,
    data="feedback",
    section=KtoConfig,
    evaluate=score_feedback,
    check=check,
    console=("loss", "rewards/margins", "kl", "learning_rate"),
    signal=("rewards/margins", True),
)
