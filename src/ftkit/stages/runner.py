"""The run every stage shares, top to bottom: runtime, tokenizer and template, data, model, adapter,
trainer, train, save. A stage supplies its trainer arguments and its trainer (its StageSpec).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from ftkit.allocator import keep_freed_memory
from ftkit.atomic import atomic_directory
from ftkit.callbacks import LOSS_PLOT, add_run_callbacks, finish_trackers, plot_losses, start_trackers
from ftkit.config import Recipe
from ftkit.data.pipeline import build_data
from ftkit.data.stream import Share, build_streamed_data, record_counts
from ftkit.data.stream_counts import StreamCounts
from ftkit.distributed import LaunchContext
from ftkit.errors import UserError
from ftkit.modelcard import write_model_card
from ftkit.models.adapters import RESIDUAL_INITS, apply_adapter, count_parameters, save_initial_adapter
from ftkit.models.fused_norm import use_fused_rms_norm
from ftkit.models.loader import attention_backend, load_model, load_tokenizer_and_template, loaded_bits
from ftkit.models.runtime import resolve_runtime
from ftkit.models.special_tokens import resize_embeddings
from ftkit.resume import StartPlan, check_data_unchanged
from ftkit.rundir import FINAL_STAGING, INITIAL_ADAPTER, SCRATCH_BASE, RunRecord, publish
from ftkit.stages.spec import StageSpec, TrainerInputs
from ftkit.summary import RunSummary, summarize_run

log = logging.getLogger(__name__)
REFERENCE_ADAPTER = "ref"


def run_stage(
    recipe: Recipe, context: LaunchContext, stage: StageSpec, start: StartPlan
) -> RunSummary | None:
    """Train; `start` says whether this is a new run or which checkpoint it resumes (resume.py). Returns
    the run's summary in the main process."""
    from transformers import set_seed

    started = time.monotonic()
    # Seed before anything random: from-scratch weights, adapter initialization, dropout, data order.
    set_seed(recipe.train.seed)
    runtime = resolve_runtime(recipe)
    if runtime.device == "cpu":
        keep_freed_memory()
    bundle = load_tokenizer_and_template(recipe.model)
    tokenizer, template = bundle.tokenizer, bundle.template

    args = stage.arguments(recipe, runtime)
    stream = None
    if recipe.data.streaming:
        # Every process reads its own share of the stream as it trains: nothing to prepare once.
        data, stream = build_streamed_data(
            recipe, tokenizer, template, Share(context.rank, context.world_size)
        )
    else:
        with args.main_process_first(desc="preparing the datasets"):
            data = build_data(recipe, tokenizer, template)
    log_data_report(data.report, stage)
    if context.is_main:
        check_data_unchanged(start, data.report.inputs)
    train, evaluation = data.for_trainer(recipe.stage)
    loftq = getattr(recipe.adapter, "init", None) == "loftq"
    fresh_loftq = loftq and start.scratch_base is None
    if start.scratch_base is not None:
        # A resumed run continues on the exact base it saved (random, or quantized by LoftQ), never a new one.
        log.info("loading the base the run saved in %s", start.scratch_base)
        saved = recipe.model.model_copy(
            update={"name_or_path": str(start.scratch_base), "from_scratch": False}
        )
        model = load_model(saved, runtime, recipe.train.seed, stage.head)
    else:
        # LoftQ starts from the full-precision weights; the run then loads the quantized base it saves.
        first = recipe.model.model_copy(update={"quantization": None}) if fresh_loftq else recipe.model
        model = load_model(first, runtime, recipe.train.seed, stage.head)
    resize_embeddings(model, tokenizer, bundle.new_token_ids)
    if fused := use_fused_rms_norm(model):
        log.debug("%d RMSNorm layers run as one kernel (models/fused_norm.py)", fused)

    # From here on the run writes into output_dir; everything above failed without leaving a trace.
    record = RunRecord(recipe, context.is_main)
    try:
        base_model, adapter = None, recipe.adapter
        if recipe.keeps_base:
            # An adapter is useless without the exact base it was trained on: keep that base.
            base_model = Path(recipe.train.output_dir) / SCRATCH_BASE
            if fresh_loftq:
                _loftq_start(model, recipe, args, context, runtime, tokenizer, bundle.new_token_ids, stage)
                saved = recipe.model.model_copy(update={"name_or_path": str(base_model)})
                model = load_model(saved, runtime, recipe.train.seed, stage.head)
                use_fused_rms_norm(model)
            elif start.scratch_base is None and context.is_main:
                with atomic_directory(base_model, force=True) as staging:
                    model.save_pretrained(staging)
                    tokenizer.save_pretrained(staging)
            model.config._name_or_path = str(base_model.resolve())
        if loftq:
            # LoftQ's start, fresh or resumed: what dpo/kto/grpo copy as their reference adapter.
            initial = str(Path(recipe.train.output_dir) / INITIAL_ADAPTER)
            adapter = recipe.adapter.model_copy(update={"init_from": initial})
        model = apply_adapter(model, adapter, bundle.new_token_ids, stage.head)
        initial_adapter = None
        if getattr(recipe.adapter, "init", "default") in RESIDUAL_INITS:
            initial_adapter = Path(recipe.train.output_dir) / INITIAL_ADAPTER
            if context.is_main and start.checkpoint is None:
                with atomic_directory(initial_adapter, force=True) as staging:
                    save_initial_adapter(model, staging)
        parameters = count_parameters(model)
        record.update(
            device=runtime.device,
            precision=runtime.precision,
            dtype=str(runtime.dtype).removeprefix("torch."),
            attn_implementation=attention_backend(model),
            # What the loaded weights are, not what the recipe asked for.
            quantization=f"{bits}-bit" if (bits := loaded_bits(model)) else None,
            parameters={"total": parameters.total, "trainable": parameters.trainable},
            template=template.name if template is not None else None,
            data=data.report.as_dict(),
            base_model=SCRATCH_BASE if base_model else recipe.model.name_or_path,
            base_revision=None if base_model else recipe.model.revision,
            world_size=context.world_size,
        )
        log.info(
            "training %s on %s, %s precision, weights in %s, attention %s%s; %s",
            recipe.stage,
            runtime.device,
            runtime.precision,
            record.data["dtype"],
            record.data["attn_implementation"],
            ", Liger kernels" if runtime.liger_kernels else "",
            parameters,
        )

        inputs = TrainerInputs(recipe, args, model, tokenizer, template, train, evaluation, stream)
        trainer = stage.trainer(inputs)
        if stream is not None:

            def record_stream(total: StreamCounts) -> None:
                record_counts(data.report, total, recipe.data.train)
                record.update(data=data.report.as_dict())

            trainer.on_stream_counts = record_stream
        if context.is_main:
            start_trackers(recipe, record.data)
        add_run_callbacks(trainer, recipe, record.data)
        checkpoint = str(start.checkpoint) if start.checkpoint is not None else None
        if checkpoint:
            log.info("resuming from %s", checkpoint)
        result = _train(trainer, checkpoint, recipe)
        title = f"{recipe.logging.run_name} ({recipe.stage})"
        saved = save_final(trainer, context, recipe.train.output_dir, title, initial_adapter)
        history = trainer.state.log_history
        output_dir = recipe.train.output_dir
        summary = summarize_run(
            history, stage.name, stage.signal, stage.console, output_dir, time.monotonic() - started
        )
        record.finish(
            "completed",
            resumed_from=checkpoint,
            global_step=trainer.state.global_step,
            train_metrics=result.metrics,
            best_checkpoint=trainer.state.best_model_checkpoint,
            saved_files=saved,
            summary=summary.as_dict(),
        )
        if context.is_main:
            write_model_card(output_dir, recipe, record.data, summary)
        log.info("saved %s to %s", "adapter" if recipe.adapter.type == "lora" else "model", output_dir)
        finish_trackers()
        return summary if context.is_main else None
    except BaseException as exc:
        record.fail(exc)
        finish_trackers(failed=True)
        raise


def _loftq_start(
    model: Any,
    recipe: Recipe,
    args: Any,
    context: LaunchContext,
    runtime: Any,
    tokenizer: Any,
    new_ids: list[int],
    stage: StageSpec,
) -> None:
    """Compute LoftQ on the full-precision `model` (first process; the others wait) and save the quantized
    base and the initial adapter into the run."""
    from ftkit.models.loftq import prepare_loftq_base

    out = Path(recipe.train.output_dir)
    with args.main_process_first(desc="LoftQ initialization"):
        if context.is_main:
            adapted = apply_adapter(model, recipe.adapter, new_ids, stage.head)
            prepare_loftq_base(
                adapted,
                tokenizer,
                recipe.model.quantization,
                recipe.adapter.loftq_iterations,
                out / SCRATCH_BASE,
                out / INITIAL_ADAPTER,
                device=runtime.device,
            )


def _train(trainer: Any, checkpoint: str | None, recipe: Recipe) -> Any:
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except KeyError as exc:
        # The metric names a stage reports (eval_loss, DPO's eval_rewards/accuracies, ...) are known only
        # at the first evaluation; transformers' message lists them.
        if "metric_for_best_model" not in str(exc):
            raise
        raise UserError(
            f"train.metric_for_best_model={recipe.train.metric_for_best_model!r} is not a metric this run "
            f"reports: {exc.args[0].split('. Consider')[0]}"
        ) from None


def log_data_report(report: Any, stage: StageSpec) -> None:
    """One line per split: examples, tokens, trained tokens, truncations, and where the data came from."""
    origin = "from the cache" if report.cache.get("hit") else "tokenized"
    for name, split in report.splits.items():
        if name == "train" and report.cache.get("streaming"):
            log.info("train data: streamed, read and tokenized while training (counted in run.json)")
            continue
        if stage.shape.measure is None:  # prompts: the trained tokens are sampled during training
            log.info("%s data (%s): %d %s", name, origin, split.examples, stage.shape.name)
            continue
        log.info(
            "%s data (%s): %d examples, %d tokens (%d trained), %d truncated",
            name,
            origin,
            split.examples,
            split.tokens,
            split.trained_tokens,
            split.truncated,
        )


def save_final(
    trainer: Any,
    context: LaunchContext,
    output_dir: str | Path,
    title: str = "",
    initial_adapter: Path | None = None,
) -> list[str]:
    """Save the trained adapter or model, tokenizer, trainer state and loss plot into output_dir.

    The model is first saved into a staging folder and then moved in, so a crash mid-save leaves the
    run's status at running/failed rather than a half-written model that looks finished.
    """
    output_dir = Path(output_dir)
    staging = output_dir / FINAL_STAGING
    if context.is_main:
        shutil.rmtree(staging, ignore_errors=True)  # left by a crash during an earlier save
    trainer.save_model(str(staging))
    if not context.is_main:
        return []
    model = trainer.accelerator.unwrap_model(trainer.model)
    if REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
        # TRL's kto/dpo/grpo keep the starting adapter beside the trained one as their reference policy
        # (a copy, not trained): the run's output is the trained adapter alone.
        shutil.rmtree(staging / REFERENCE_ADAPTER, ignore_errors=True)
    if initial_adapter is not None:
        # A residual initialization (pissa, olora) trained against a changed base: saved again, converted by
        # peft into an adapter of the original base, which is what users load and `ftkit export` merges.
        model.save_pretrained(
            str(staging),
            path_initial_model_for_weight_conversion=str(initial_adapter),
            selected_adapters=["default"],
        )
    moved = publish(staging, output_dir)
    trainer.state.save_to_json(str(output_dir / "trainer_state.json"))
    plot_losses(trainer.state.log_history, output_dir / LOSS_PLOT, title)
    return moved
