"""`ftkit eval`: loss and perplexity on the eval data, and task metrics on generated answers, for the
fine-tuned model and (with --compare-base) the base model, side by side; saved as eval_results.json."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.atomic import atomic_write_text
from ftkit.config import Recipe
from ftkit.errors import UserError
from ftkit.infer import GenerationOptions, generate, is_encoder_decoder, load_for_inference
from ftkit.metrics import METRICS
from ftkit.stages import stage_for

log = logging.getLogger(__name__)
RESULTS_FILE = "eval_results.json"


@dataclass(frozen=True)
class EvalRequest:
    compare_base: bool = False
    model: str | None = None
    max_samples: int | None = None


def _eval_examples(recipe: Recipe, limit: int | None) -> tuple[Any, list[str]]:
    """Normalized eval examples that end with an answer, and the labels of the classification entries."""
    from ftkit.data.pipeline import normalized_splits

    _, evaluation, registry = normalized_splits(recipe)
    if evaluation is None:
        raise UserError("ftkit eval needs eval data: set data.eval or data.val_size in the recipe")
    _warn_if_trained_on(recipe, evaluation)
    labels = sorted(
        {label for ref in recipe.data.eval for label in (registry.get(ref.name).label_map or {}).values()}
    )
    keep = [
        i
        for i, messages in enumerate(evaluation["messages"])
        if messages and messages[-1]["role"] == "assistant"
    ]
    if not keep:
        raise UserError("the eval data has no answers to compare with (every example ends with a prompt)")
    evaluation = evaluation.select(keep[:limit] if limit else keep)
    return evaluation, labels


def _warn_if_trained_on(recipe: Recipe, evaluation: Any) -> None:
    """Warn when eval examples were in the data the run trained on, as its recorded recipe says (a
    data.val_size given only now splits off rows the run saw)."""
    from ftkit.config import load_recipe
    from ftkit.data.pipeline import normalized_splits
    from ftkit.data.transforms import shared_prompts
    from ftkit.rundir import RESOLVED_RECIPE_FILE

    recorded_path = Path(recipe.train.output_dir) / RESOLVED_RECIPE_FILE
    if not recorded_path.is_file():
        return
    try:
        recorded = load_recipe(recorded_path)
    except UserError:
        return
    if recorded.data == recipe.data and recorded.train.seed == recipe.train.seed:
        return  # the same split: the data pipeline has warned about any overlap already
    trained_on, _, _ = normalized_splits(recorded)
    if trained_on is None:
        log.info("the run trained on a stream: its eval examples are not compared with what it read")
        return
    shared = shared_prompts(trained_on, evaluation)
    if shared:
        log.warning(
            "%d of %d eval examples ask what the run trained on (its recorded recipe %s): their scores are not "
            "held-out",
            shared,
            len(evaluation),
            recorded_path,
        )


def mean_nll(
    model: Any, tokenizer: Any, template: Any, recipe: Recipe, batch_size: int, limit: int | None
) -> float:
    """Mean negative log-likelihood of the trained tokens (answers) of the eval data."""
    import torch

    from ftkit.data.pipeline import build_data
    from ftkit.data.stream import Share, build_streamed_data

    if recipe.data.streaming:  # the eval split is read whole; the training stream is only opened
        data, _ = build_streamed_data(recipe, tokenizer, template, Share())
    else:
        data = build_data(recipe, tokenizer, template)
    evaluation = data.eval
    if evaluation is None:
        raise UserError("ftkit eval needs eval data: set data.eval or data.val_size in the recipe")
    if limit:
        evaluation = evaluation.select(range(min(limit, len(evaluation))))
    total, count = 0.0, 0
    model.eval()
    for start in range(0, len(evaluation), batch_size):
        batch = evaluation[start : start + batch_size]
        width = max(len(ids) for ids in batch["input_ids"])
        pad = tokenizer.pad_token_id or 0
        ids = torch.tensor([row + [pad] * (width - len(row)) for row in batch["input_ids"]])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch["input_ids"]])
        # Decoder-only: the labels follow the input ids, each position predicting the next. Encoder-decoder:
        # the labels are the decoder's own sequence, each position predicting its label.
        shift = 0 if is_encoder_decoder(model) else 1
        label_width = max(len(row) for row in batch["labels"])
        labels = torch.tensor([row + [-100] * (label_width - len(row)) for row in batch["labels"]])
        extra = {"labels": labels.to(model.device)} if not shift else {}
        with torch.inference_mode():
            logits = model(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device), **extra
            ).logits
        logits = logits.float()[:, : logits.shape[1] - shift]
        targets = labels[:, shift:].to(logits.device)
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += losses.item()
        count += int((targets != -100).sum())
    return total / max(count, 1)


def task_metrics(
    answers: list[str],
    references: list[str],
    metrics: list[str],
    labels: list[str],
    groups: list[str | None] | None = None,
) -> dict[str, Any]:
    """The metric table's generated-answer metrics named in `metrics`; a report's structured parts (a
    confusion matrix, per-group rates) are kept under the metric's name."""
    scores: dict[str, Any] = {}
    for name in metrics:
        metric = METRICS[name]
        if metric.generated is None:
            continue
        arguments = (answers, references, labels) + (
            (groups or [None] * len(answers),) if metric.grouped else ()
        )
        result = metric.generated(*arguments)
        scores |= {key: value for key, value in result.items() if isinstance(value, float | int)}
        if details := {key: value for key, value in result.items() if not isinstance(value, float | int)}:
            scores[name] = details
    return scores


def lower_is_better(name: str) -> bool:
    """For a reported score (rouge reports rouge1, ...): whether a smaller value is the better one."""
    if name in METRICS:
        return METRICS[name].lower_is_better
    return any(name in metric.lower_is_better_scores for metric in METRICS.values())


def score_model(
    model: Any, recipe: Recipe, examples: Any, labels: list[str], limit: int | None
) -> dict[str, Any]:
    from ftkit.models.loader import load_tokenizer_and_template
    from ftkit.models.special_tokens import resize_embeddings

    config = recipe.eval
    bundle = load_tokenizer_and_template(recipe.model)
    resize_embeddings(model, bundle.tokenizer)  # a base scored beside the tokenizer training grew
    scores: dict[str, Any] = {}
    from_likelihood = [name for name in config.metrics if METRICS[name].likelihood is not None]
    if from_likelihood:
        nll = mean_nll(model, bundle.tokenizer, bundle.template, recipe, config.batch_size, limit)
        scores |= {name: METRICS[name].likelihood(nll) for name in from_likelihood}  # type: ignore[misc]
    generated = [name for name in config.metrics if METRICS[name].generated is not None]
    if generated:
        conversations = [
            {"system": s, "messages": m[:-1]}
            for s, m in zip(examples["system"], examples["messages"], strict=True)
        ]
        references = [m[-1]["content"] for m in examples["messages"]]
        options = GenerationOptions(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)
        answers = generate(
            model, bundle.tokenizer, bundle.template, conversations, options, True, recipe.data.template_vars
        )
        groups = examples["group"] if "group" in examples.column_names else None
        scores |= task_metrics(answers, references, generated, labels, groups)
        scores["samples"] = [
            {"prompt": c["messages"][-1]["content"], "reference": r, "answer": a}
            for c, r, a in list(zip(conversations, references, answers, strict=True))[:5]
        ]
    return scores


def _processed_eval(recipe: Recipe, limit: int | None) -> Any:
    """The eval split as the stage's trainer reads it (pairs, labelled answers)."""
    from ftkit.data.pipeline import build_data
    from ftkit.models.loader import load_tokenizer_and_template

    bundle = load_tokenizer_and_template(recipe.model)
    evaluation = build_data(recipe, bundle.tokenizer, bundle.template).eval
    if evaluation is None:
        raise UserError("ftkit eval needs eval data: set data.eval or data.val_size in the recipe")
    if not len(evaluation):
        raise UserError("the eval split has no usable examples (see the skipped rows above)")
    return evaluation.select(range(min(limit, len(evaluation)))) if limit else evaluation


def score_stage(model: Any, recipe: Recipe, examples: Any) -> dict[str, Any]:
    """The stage's own held-out scores (stages/scores.py)."""
    from ftkit.models.loader import load_tokenizer_and_template
    from ftkit.models.special_tokens import resize_embeddings

    tokenizer = load_tokenizer_and_template(recipe.model).tokenizer
    resize_embeddings(model, tokenizer)
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return stage_for(recipe).evaluate(model, examples, pad, recipe.eval.batch_size)  # type: ignore[misc]


def _change(metric: str, base: float, tuned: float) -> str:
    """Relative improvement (lower is better for loss and perplexity); absolute when the base scored 0."""
    if base == 0:
        return f"{tuned - base:+.4f} abs"
    better = (base - tuned) / abs(base) if lower_is_better(metric) else (tuned - base) / abs(base)
    return f"{better * 100:+.1f}%"


def table(results: dict[str, Any]) -> str:
    """The scores side by side, then each report's structured parts (per model)."""
    from ftkit.task_reports import render_report

    tuned = {k: v for k, v in results["fine_tuned"].items() if isinstance(v, float)}
    base = {k: v for k, v in results.get("base", {}).items() if isinstance(v, float)}
    if not base:
        lines = [f"{metric:<16} {value:.4f}" for metric, value in tuned.items()]
    else:
        lines = [f"{'metric':<16} {'base':>10} {'fine-tuned':>11} {'improvement':>12}"]
        for metric, value in tuned.items():
            lines.append(
                f"{metric:<16} {base[metric]:>10.4f} {value:>11.4f} {_change(metric, base[metric], value):>12}"
            )
    for model in ("base", "fine_tuned"):
        for name, part in results.get(model, {}).items():
            if isinstance(part, dict):
                lines += ["", *render_report(f"{model.replace('_', '-')} {name}", part)]
    return "\n".join(lines)


def evaluate(recipe: Recipe, request: EvalRequest) -> dict[str, Any]:
    """Score the fine-tuned model (and the base model); write eval_results.json into the run's output_dir."""
    limit = request.max_samples or recipe.eval.max_samples
    stage = stage_for(recipe)
    if stage.needs_template and not recipe.model.template:
        raise UserError("ftkit eval renders prompts with a chat template: the recipe needs model.template")
    if stage.evaluate is not None:
        examples, labels = _processed_eval(recipe, limit), []
        score: Any = lambda model: score_stage(model, recipe, examples)  # noqa: E731
        metrics = [stage.name]
    else:
        examples, labels = _eval_examples(recipe, limit)
        score = lambda model: score_model(model, recipe, examples, labels, limit)  # noqa: E731
        metrics = recipe.eval.metrics
    model, _ = load_for_inference(recipe, request.model)
    results: dict[str, Any] = {"examples": len(examples), "metrics": metrics}
    results["fine_tuned"] = score(model)
    if request.compare_base:
        import torch

        from ftkit.models.loader import quiet_new_head

        base = base_model_path(recipe)
        log.info("scoring the base model %s", base)
        try:
            torch.manual_seed(recipe.train.seed)  # a new head's random start, the same at every eval
            with quiet_new_head(stage.head):
                base_model = stage.head.model_class().from_pretrained(base, **stage.head.config)
        except OSError as exc:
            raise UserError(f"cannot load the base model {base!r}: {exc}") from None
        results["base"] = score(base_model)
        results["improvement"] = {
            metric: _change(metric, results["base"][metric], value)
            for metric, value in results["fine_tuned"].items()
            if isinstance(value, float)
        }
    output = Path(recipe.train.output_dir) / RESULTS_FILE
    atomic_write_text(output, json.dumps(results, indent=2) + "\n")
    log.info("wrote %s", output)
    return results


def base_model_path(recipe: Recipe) -> str:
    """The model the run started from (for a from-scratch run, the initial weights it saved)."""
    from ftkit.rundir import read_run

    run = read_run(recipe.train.output_dir) or {}
    recorded = run.get("base_model")
    if recorded and (Path(recipe.train.output_dir) / recorded).is_dir():
        return str(Path(recipe.train.output_dir) / recorded)
    return recipe.model.name_or_path
