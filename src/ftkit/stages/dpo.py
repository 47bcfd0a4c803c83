"""Direct preference optimization on TRL's DPOTrainer, fed with ftkit's prompt/chosen/rejected token ids.

With LoRA the reference model is the base model with the adapter switched off (TRL does this for a
PEFT model); with full or freeze training TRL keeps a frozen copy of the starting weights.
"""

from __future__ import annotations

from typing import Any

from ftkit.config import Recipe
from ftkit.models.runtime import Runtime
from ftkit.stages.common import trl_arguments
from ftkit.stages.runner import Stage, TrainerInputs


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

    return PretokenizedDPOTrainer(
        model=inputs.model,
        args=inputs.args,
        train_dataset=inputs.train,
        eval_dataset=inputs.eval,
        processing_class=inputs.tokenizer,
    )


STAGE = Stage(arguments, trainer)
