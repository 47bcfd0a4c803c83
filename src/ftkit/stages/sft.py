"""Supervised fine-tuning on TRL's SFTTrainer, fed with ftkit's tokenized conversations and masks.

Read top to bottom: resolve the runtime, load tokenizer and template, build the data, load the model,
attach the adapter, train, save.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ftkit.callbacks import use_progress_log
from ftkit.config import Recipe
from ftkit.data.pipeline import build_data
from ftkit.launch import LaunchContext
from ftkit.models.adapters import apply_adapter, count_parameters
from ftkit.models.loader import attention_backend, load_model, load_tokenizer_and_template
from ftkit.models.runtime import resolve_runtime
from ftkit.models.special_tokens import resize_embeddings
from ftkit.rundir import RunRecord
from ftkit.stages.common import log_data_report, resume_point, save_final, trainer_arguments

log = logging.getLogger(__name__)
SCRATCH_BASE = "base_model"


def run(recipe: Recipe, context: LaunchContext) -> None:
    from trl import SFTConfig, SFTTrainer

    runtime = resolve_runtime(recipe)
    bundle = load_tokenizer_and_template(recipe.model, recipe.stage)
    tokenizer, template = bundle.tokenizer, bundle.template

    args = SFTConfig(
        **trainer_arguments(recipe, runtime),
        max_length=recipe.data.max_length,
        packing=recipe.data.packing,
        dataset_num_proc=recipe.data.num_proc,
    )
    with args.main_process_first(desc="preparing the datasets"):
        data = build_data(recipe, tokenizer, template)
    log_data_report(data.report)
    train, evaluation = data.for_trainer(recipe.stage)
    model = load_model(recipe.model, runtime, recipe.train.seed)
    resize_embeddings(model, tokenizer, bundle.new_token_ids)

    # From here on the run writes into output_dir; everything above failed without leaving a trace.
    record = RunRecord(recipe, context.is_main)
    try:
        base_model = None
        if recipe.model.from_scratch and recipe.adapter.type == "lora" and context.is_main:
            # An adapter is useless without the exact random base it was trained on: keep that base.
            base_model = str(Path(recipe.train.output_dir) / SCRATCH_BASE)
            model.save_pretrained(base_model)
            tokenizer.save_pretrained(base_model)
            model.config._name_or_path = str(Path(base_model).resolve())
        model = apply_adapter(model, recipe.adapter, bundle.new_token_ids)
        parameters = count_parameters(model)
        record.update(
            device=runtime.device,
            precision=runtime.precision,
            dtype=str(runtime.dtype).removeprefix("torch."),
            attn_implementation=attention_backend(model),
            parameters={"total": parameters.total, "trainable": parameters.trainable},
            template=template.name,
            data=data.report.as_dict(),
            base_model=SCRATCH_BASE if base_model else recipe.model.name_or_path,
            world_size=context.world_size,
        )
        log.info(
            "training on %s, %s precision, weights in %s, attention %s; %s",
            runtime.device,
            runtime.precision,
            record.data["dtype"],
            record.data["attn_implementation"],
            parameters,
        )

        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
        )
        use_progress_log(trainer)
        checkpoint = resume_point(recipe)
        result = trainer.train(resume_from_checkpoint=checkpoint)
        saved = save_final(trainer, context, recipe.train.output_dir)
        record.finish(
            "completed",
            resumed_from=checkpoint,
            global_step=trainer.state.global_step,
            train_metrics=result.metrics,
            saved_files=saved,
        )
        log.info(
            "saved %s to %s", "adapter" if recipe.adapter.type == "lora" else "model", recipe.train.output_dir
        )
    except BaseException as exc:
        record.fail(exc)
        raise
