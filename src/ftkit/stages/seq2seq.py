"""Stage sft on an encoder-decoder model (T5, BART, Switch Transformers), chosen when the model's config
says `is_encoder_decoder` (stages.stage_for): the same recipe, trained on transformers' Seq2SeqTrainer.

TRL's SFTTrainer trains decoder-only models, so this variant uses transformers' own trainer and collator
for sequence-to-sequence data; the examples are built by data/seq2seq.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.data.seq2seq import SEQ2SEQ, process_seq2seq
from ftkit.models.heads import SEQ2SEQ_LM
from ftkit.stages.common import build_trainer, trainer_arguments
from ftkit.stages.spec import StageSpec, TrainerInputs

if TYPE_CHECKING:
    from ftkit.config.recipe import Recipe
    from ftkit.models.runtime import Runtime


def arguments(recipe: Recipe, runtime: Runtime) -> Any:
    from transformers import Seq2SeqTrainingArguments

    # The trainer keeps the label columns it is given; ftkit's data holds only the model's inputs.
    return Seq2SeqTrainingArguments(**trainer_arguments(recipe, runtime), remove_unused_columns=False)


def trainer(inputs: TrainerInputs) -> Any:
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

    from ftkit.data.tokenize import IGNORE_INDEX

    collator = DataCollatorForSeq2Seq(inputs.tokenizer, model=inputs.model, label_pad_token_id=IGNORE_INDEX)
    return build_trainer(Seq2SeqTrainer, inputs, data_collator=collator)


STAGE = StageSpec(
    name="sft",
    description="supervised fine-tuning of an encoder-decoder model: the prompt encoded, the answer decoded",
    process=process_seq2seq,
    shape=SEQ2SEQ,
    arguments=arguments,
    trainer=trainer,
    head=SEQ2SEQ_LM,
    needs_template=False,
)
