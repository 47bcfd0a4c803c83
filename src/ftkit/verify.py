"""`ftkit verify RUN_DIR [--export DIR] [--endpoint URL]`: is what is served what was trained?

The trained side is the run's adapter on its base, unmerged (or its full weights), with the run's chat
template. Each other side (the merged export with the template its export.json names, a running
OpenAI-compatible server) is compared with it on a fixed set of prompts (a file, else the run's eval
data, else its first training examples):

- the rendered prompt text and its token ids (a template that differs changes both);
- the stop tokens (the run's template's against the export's generation_config eos ids);
- the greedy continuation (token ids; text for an endpoint);
- the per-token log-probabilities of the trained side's greedy continuation, teacher-forced through both
  models: the largest difference must stay within the tolerance.

The table is printed; any mismatch makes the command fail (exit 2) naming the first difference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Side:
    name: str
    model: Any
    tokenizer: Any
    template: Any
    variables: dict[str, str]
    stops: list[int]


@dataclass
class Row:
    prompt: str
    checks: dict[str, bool] = field(default_factory=dict)
    logprob_gap: float = 0.0
    detail: str = ""


def trained_side(run_dir: Path) -> tuple[Side, Any]:
    """The run's own model (adapter on its base, not merged) and template, and its recipe."""
    from ftkit.config import load_recipe
    from ftkit.models.loader import load_model_dir, trained_tokenizer
    from ftkit.models.special_tokens import resize_embeddings, stop_token_ids
    from ftkit.runfiles import RESOLVED_RECIPE_FILE, read_run, recorded_base
    from ftkit.templates import get_template, token_variables

    recipe_path = run_dir / RESOLVED_RECIPE_FILE
    run = read_run(run_dir)
    if not recipe_path.is_file() or run is None or run.get("status") != "completed":
        raise UserError(f"{run_dir} holds no completed ftkit run (run.json, {RESOLVED_RECIPE_FILE})")
    recipe = load_recipe(recipe_path)
    if not recipe.model.template:
        raise UserError(f"the run in {run_dir} has no chat template to verify")
    if (run_dir / "adapter_config.json").is_file():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = recorded_base(run_dir, run)
        tokenizer = trained_tokenizer(run_dir, base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype="float32")
        resize_embeddings(model, tokenizer)
        model = PeftModel.from_pretrained(model, str(run_dir))
    else:
        model, tokenizer = load_model_dir(str(run_dir))
    template = get_template(recipe.model.template, tokenizer)
    variables = {**token_variables(tokenizer), **recipe.data.template_vars}
    side = Side("trained", model.eval(), tokenizer, template, variables, stop_token_ids(tokenizer, template))
    return side, recipe


def export_side(export_dir: Path) -> Side:
    """The merged export as an inference engine loads it: its tokenizer, its template, its generation config."""
    from transformers import GenerationConfig

    from ftkit.models.loader import load_model_dir
    from ftkit.templates import get_template, token_variables

    model, tokenizer = load_model_dir(str(export_dir))
    record = export_dir / "export.json"
    name = (json.loads(record.read_text()).get("template") if record.is_file() else None) or "tokenizer"
    eos = GenerationConfig.from_pretrained(str(export_dir)).eos_token_id
    stops = [eos] if isinstance(eos, int) else list(eos or [])
    return Side(
        "export", model.eval(), tokenizer, get_template(name, tokenizer), token_variables(tokenizer), stops
    )


def prompts_of(recipe: Any, path: str | None, count: int) -> list[dict[str, Any]]:
    """Conversations to verify on: a JSONL file, else the run's eval examples, else its training ones."""
    from ftkit.infer import read_conversations

    if path:
        return read_conversations(path)[:count]
    from ftkit.data.pipeline import normalized_splits

    train, evaluation, _ = normalized_splits(recipe)
    rows = evaluation if evaluation is not None else train
    found = []
    for system, messages in zip(rows["system"], rows["messages"], strict=True):
        asked = messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages
        if asked:
            found.append({"system": system, "messages": asked})
        if len(found) == count:
            break
    if not found:
        raise UserError("no prompts to verify on: give --prompts FILE (JSONL of {prompt} or {messages})")
    return found


def _render(side: Side, conversation: dict[str, Any]) -> tuple[str, list[int]]:
    text = side.template.render_text(
        conversation["messages"],
        conversation.get("system"),
        add_generation_prompt=True,
        variables=side.variables,
    )
    return text, side.tokenizer(text, add_special_tokens=False)["input_ids"]


def _greedy(side: Side, ids: list[int], max_new_tokens: int) -> list[int]:
    import torch

    with torch.inference_mode():
        output = side.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=side.stops or None,
            pad_token_id=side.tokenizer.pad_token_id,
        )
    return output[0, len(ids) :].tolist()


def _logprobs(side: Side, ids: list[int], continuation: list[int]) -> list[float]:
    import torch

    full = torch.tensor([ids + continuation])
    with torch.inference_mode():
        logits = side.model(input_ids=full).logits.float()
    logps = torch.log_softmax(logits[0, len(ids) - 1 : -1], dim=-1)
    return logps.gather(-1, torch.tensor(continuation)[:, None])[:, 0].tolist()


def _first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def compare(
    trained: Side, other: Side, conversation: dict[str, Any], max_new_tokens: int, tolerance: float
) -> Row:
    text, ids = _render(trained, conversation)
    other_text, other_ids = _render(other, conversation)
    row = Row(conversation["messages"][-1]["content"][:40])
    row.checks["prompt text"] = text == other_text
    row.checks["prompt tokens"] = ids == other_ids
    row.checks["stop tokens"] = set(trained.stops) == set(other.stops)
    answer, other_answer = _greedy(trained, ids, max_new_tokens), _greedy(other, other_ids, max_new_tokens)
    row.checks["greedy output"] = answer == other_answer
    if answer and ids == other_ids:
        gaps = [
            abs(a - b)
            for a, b in zip(_logprobs(trained, ids, answer), _logprobs(other, ids, answer), strict=True)
        ]
        row.logprob_gap = max(gaps)
        row.checks["log-probs"] = row.logprob_gap <= tolerance
    decode = trained.tokenizer.decode
    if not row.checks["prompt text"]:
        at = _first_difference(list(text), list(other_text))
        row.detail = f"prompt differs at character {at}: trained {text[at : at + 30]!r} vs {other.name} {other_text[at : at + 30]!r}"
    elif not row.checks["stop tokens"]:
        row.detail = (
            f"stop tokens: trained {trained.tokenizer.convert_ids_to_tokens(trained.stops)} vs "
            f"{other.name} {other.tokenizer.convert_ids_to_tokens(other.stops)}"
        )
    elif not row.checks["greedy output"]:
        at = _first_difference(answer, other_answer)
        row.detail = (
            f"greedy output differs at token {at}: trained {decode(answer[at : at + 8])!r} vs "
            f"{other.name} {other.tokenizer.decode(other_answer[at : at + 8])!r}"
        )
    return row


def compare_endpoint(
    trained: Side, url: str, conversation: dict[str, Any], max_new_tokens: int, api_key: str | None
) -> Row:
    import urllib.error
    import urllib.request

    from ftkit.data.processors import adds_bos
    from ftkit.infer import answer_text

    text, ids = _render(trained, conversation)
    bos = trained.tokenizer.bos_token
    if bos and adds_bos(trained.tokenizer) and text.startswith(bos):
        text = text[len(bos) :]  # the server's tokenizer adds it, as for any completion prompt
    expected = answer_text(
        trained.tokenizer,
        _greedy(trained, ids, max_new_tokens),
        trained.template.stop_strings(trained.variables),
    )
    body = json.dumps({"prompt": text, "max_tokens": max_new_tokens, "temperature": 0}).encode()
    headers = {
        "Content-Type": "application/json",
        **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
    }
    request = urllib.request.Request(
        url.rstrip("/") + "/completions", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            served = json.load(response)["choices"][0]["text"].strip()
    except (urllib.error.URLError, KeyError, ValueError) as exc:
        raise UserError(f"the endpoint {url} did not answer a completion request: {exc}") from None
    row = Row(conversation["messages"][-1]["content"][:40])
    row.checks["greedy output"] = served == expected
    if not row.checks["greedy output"]:
        row.detail = f"endpoint answered {served[:40]!r}, the trained model {expected[:40]!r}"
    return row


def table(name: str, rows: list[Row]) -> str:
    checks = list(dict.fromkeys(check for row in rows for check in row.checks))
    lines = [f"{name}: " + " | ".join(["prompt", *checks, "max |Δ log p|"])]
    for row in rows:
        marks = ["ok" if row.checks[c] else "DIFFERS" if c in row.checks else "-" for c in checks]
        lines.append(" | ".join([repr(row.prompt), *marks, f"{row.logprob_gap:.2e}"]))
        if row.detail:
            lines.append(f"    {row.detail}")
    return "\n".join(lines)


def check_export(run_dir: Path, export_dir: Path, count: int = 2, tolerance: float = 1e-3) -> dict[str, Any]:
    """The adapter-vs-export part on `count` of the run's prompts, as a record (what `ftkit export` keeps in
    export.json): passed, the largest log-probability gap, the first difference."""
    trained, recipe = trained_side(run_dir)
    other = export_side(export_dir)
    rows = [compare(trained, other, c, 16, tolerance) for c in prompts_of(recipe, None, count)]
    failed = [row for row in rows if not all(row.checks.values())]
    return {
        "prompts": len(rows),
        "passed": not failed,
        "max_logprob_gap": max(row.logprob_gap for row in rows),
        "tolerance": tolerance,
        "first_difference": (failed[0].detail or "log-probabilities beyond the tolerance")
        if failed
        else None,
    }


def verify(
    run_dir: str,
    export: str | None,
    endpoint: str | None,
    prompts: str | None,
    count: int = 4,
    max_new_tokens: int = 16,
    tolerance: float = 1e-3,
    api_key: str | None = None,
) -> dict[str, Any]:
    """Compare the run with its export and/or an endpoint; print the tables; fail on any mismatch."""
    from ftkit.models.heads import SEQ2SEQ_LM, head_of_adapter, head_of_model

    adapter = (Path(run_dir) / "adapter_config.json").is_file()
    if (head_of_adapter(run_dir) if adapter else head_of_model(run_dir)) is SEQ2SEQ_LM:
        raise UserError(
            "ftkit verify compares chat-template prompts of decoder-only models; for an encoder-decoder run, "
            "compare `ftkit generate` with the run and with --model EXPORT_DIR"
        )
    trained, recipe = trained_side(Path(run_dir))
    conversations = prompts_of(recipe, prompts, count)
    export_dir = Path(export) if export else Path(recipe.export.output_dir or "")
    results: dict[str, list[Row]] = {}
    if export or (export_dir / "config.json").is_file():
        other = export_side(export_dir)
        results["export"] = [compare(trained, other, c, max_new_tokens, tolerance) for c in conversations]
    if endpoint:
        results["endpoint"] = [
            compare_endpoint(trained, endpoint, c, max_new_tokens, api_key) for c in conversations
        ]
    if not results:
        raise UserError(
            f"nothing to verify against: no export in {export_dir}; give --export DIR or --endpoint URL"
        )
    for name, rows in results.items():
        print(table(name, rows))
    failed = [(name, row) for name, rows in results.items() for row in rows if not all(row.checks.values())]
    summary = {name: all(all(r.checks.values()) for r in rows) for name, rows in results.items()}
    if failed:
        name, row = failed[0]
        raise UserError(
            f"verification failed: {len(failed)} of {sum(map(len, results.values()))} prompts differ "
            f"({name}: {row.detail or 'log-probabilities beyond the tolerance'})"
        )
    return {"prompts": len(conversations), "tolerance": tolerance, "passed": summary}
