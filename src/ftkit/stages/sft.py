"""Supervised fine-tuning on TRL's SFTTrainer, fed with ftkit's tokenized conversations and masks.

Packing (data.packing) puts several examples into each max_length row without attention across them:
TRL packs best-fit and trains padding-free, and the model isolates the examples through position_ids
(flash attention's varlen kernels on a GPU, a block-diagonal mask with sdpa/eager). An example's loss
is the same packed or not (tests/test_stages.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.data.processors import process_sft
from ftkit.data.shapes import TOKENS
from ftkit.stages import seq2seq
from ftkit.stages.common import build_trainer, trl_arguments
from ftkit.stages.spec import StageSpec, TrainerInputs

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        **trl_arguments(recipe, runtime),
        dataset_num_proc=recipe.data.num_proc,
        # The examples are truncated already; TRL refuses a max_length with padding_free alone.
        max_length=None if recipe.data.padding_free else recipe.data.max_length,
        packing=recipe.data.packing,
        packing_strategy="bfd",  # best-fit decreasing: whole examples, trained padding-free
        padding_free=recipe.data.padding_free,
    )


def trainer(inputs: TrainerInputs) -> Any:
    from trl import SFTTrainer

    from ftkit.stages.fused_head import use_compact_lm_head

    use_compact_lm_head()
    return build_trainer(SFTTrainer, inputs)


STAGE = StageSpec(
    name="sft",
    description="supervised fine-tuning: conversations, answers trained, prompts masked",
    process=process_sft,
    shape=TOKENS,
    arguments=arguments,
    trainer=trainer,
    packing=True,
    streaming=True,
    console=("loss", "grad_norm", "learning_rate", "mean_token_accuracy"),
    encoder_decoder=seq2seq.STAGE,
)
