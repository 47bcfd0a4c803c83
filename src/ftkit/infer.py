"""Generation with a trained model: the recipe's template renders the prompt, its stop tokens end the answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.config import Recipe
from ftkit.data.tokenize import token_variables
from ftkit.errors import UserError
from ftkit.rundir import read_run
from ftkit.templates import Template, get_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    input: str
    output: str | None = None
    model: str | None = None
    max_new_tokens: int = 64
    batch_size: int = 8


def read_conversations(path: str | Path) -> list[dict[str, Any]]:
    """JSONL rows of {"prompt": text} or {"messages": [...]}, each with an optional "system"."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read prompts from {path}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if isinstance(row, dict) and isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        elif isinstance(row, dict) and isinstance(row.get("messages"), list):
            messages = row["messages"]
        else:
            raise UserError(f'{path}:{number}: expected {{"prompt": "..."}} or {{"messages": [...]}}')
        if (
            not messages
            or not isinstance(messages[-1], dict)
            or messages[-1].get("role") not in ("user", "tool")
        ):
            raise UserError(
                f"{path}:{number}: the conversation must end with a user (or tool) message to answer"
            )
        rows.append({"system": row.get("system"), "messages": messages})
    if not rows:
        raise UserError(f"{path} holds no prompts")
    return rows


def load_for_inference(recipe: Recipe, model_dir: str | None = None) -> tuple[Any, Any]:
    """The model to generate with: an explicit directory, else the merged export, else base + adapter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export_dir = Path(recipe.export.output_dir or "")
    if model_dir or (export_dir / "config.json").is_file():
        path = model_dir or str(export_dir)
        log.info("generating with %s", path)
        try:
            return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise UserError(f"cannot load a model from {path}: {exc}") from None

    from ftkit.export import ExportRequest, merge

    run_dir = recipe.train.output_dir
    run = read_run(run_dir)
    if run is None or run.get("status") != "completed":
        raise UserError(
            f"no completed run in {run_dir} and no export in {export_dir}: train (and export) first"
        )
    if recipe.adapter.type != "lora":
        return AutoModelForCausalLM.from_pretrained(run_dir), AutoTokenizer.from_pretrained(run_dir)
    return merge(ExportRequest(None, run_dir, str(export_dir)))


def generate(
    model: Any,
    tokenizer: Any,
    template: Template,
    conversations: Sequence[dict[str, Any]],
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers for the conversations, in order."""
    import torch

    from ftkit.models.special_tokens import stop_token_ids

    variables = token_variables(tokenizer)
    stops = template.stop_strings(variables)
    stop_ids = stop_token_ids(tokenizer, template)
    tokenizer.padding_side = "left"
    model.eval()
    answers: list[str] = []
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start : start + batch_size]
        prompts = [
            template.render_text(
                c["messages"], c.get("system"), add_generation_prompt=True, variables=variables
            )
            for c in batch
        ]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            model.device
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row in output[:, inputs["input_ids"].shape[1] :]:
            text = tokenizer.decode(row, skip_special_tokens=False)
            for stop in [*stops, tokenizer.pad_token or ""]:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            answers.append(text.strip())
    return answers


def generate_file(recipe: Recipe, request: GenerationRequest) -> list[dict[str, Any]]:
    """Answer every prompt of the input file; print them, or write JSONL to request.output."""
    if not recipe.model.template:
        raise UserError("generation needs model.template in the recipe")
    conversations = read_conversations(request.input)
    model, tokenizer = load_for_inference(recipe, request.model)
    template = get_template(recipe.model.template, tokenizer)
    answers = generate(model, tokenizer, template, conversations, request.max_new_tokens, request.batch_size)
    results = [{**c, "response": a} for c, a in zip(conversations, answers, strict=True)]
    if request.output:
        from ftkit.atomic import atomic_write_text

        atomic_write_text(request.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        log.info("wrote %d responses to %s", len(results), request.output)
    else:
        for result in results:
            print(f"### {result['messages'][-1]['content']}\n{result['response']}\n")
    return results
