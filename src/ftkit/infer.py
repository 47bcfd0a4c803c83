"""Generation with a trained model: `ftkit generate` (a file of prompts) and `ftkit chat` (a terminal
conversation). The recipe's template renders the prompt and its stop tokens end the answer."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ftkit.config import Recipe
from ftkit.console import interactive
from ftkit.errors import UserError
from ftkit.runfiles import read_run, recorded_base
from ftkit.templates import ChatTemplate, get_template, token_variables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 64
    temperature: float = 0.0
    """0: greedy decoding; above 0: sampling at this temperature."""
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    input: str
    output: str | None = None
    model: str | None = None
    options: GenerationOptions = GenerationOptions()


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
    from ftkit.models.loader import load_model_dir

    export_dir = Path(recipe.export.output_dir or "")
    if model_dir or (export_dir / "config.json").is_file():
        path = model_dir or str(export_dir)
        log.info("generating with %s", path)
        return load_model_dir(path)
    run_dir = recipe.train.output_dir
    run = read_run(run_dir)
    if run is None or run.get("status") != "completed":
        raise UserError(
            f"no completed run in {run_dir} and no export in {export_dir}: train (and export) first"
        )
    if recipe.adapter.type != "lora":
        return load_model_dir(run_dir)
    from ftkit.models.loader import load_merged

    base = recorded_base(run_dir, run)
    if base is None:
        raise UserError(
            f"cannot tell the base model of the adapter in {run_dir}; export it with --base first"
        )
    log.info("generating with %s merged in memory (no export found in %s)", run_dir, export_dir)
    return load_merged(base, run_dir, revision=run.get("base_revision"))


def check_generates(model: Any) -> None:
    if not model.can_generate():
        raise UserError(
            "this is a reward model (stage rm): it scores text and does not generate. Use it as a grpo reward "
            "(grpo.reward_funcs: [{model: ...}]) or score held-out pairs with ftkit eval"
        )


def generate_kwargs(
    tokenizer: Any, template: ChatTemplate | None, options: GenerationOptions
) -> dict[str, Any]:
    from ftkit.models.special_tokens import stop_token_ids

    kwargs: dict[str, Any] = {
        "max_new_tokens": options.max_new_tokens,
        "eos_token_id": stop_token_ids(tokenizer, template),
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": options.temperature > 0,
    }
    if options.temperature > 0:
        kwargs |= {"temperature": options.temperature, "top_p": options.top_p}
    return kwargs


def answer_text(tokenizer: Any, ids: Sequence[int], stops: list[str], skip_special: bool = False) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=skip_special)
    for stop in [*stops, tokenizer.pad_token or ""]:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()


def is_encoder_decoder(model: Any) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


def generated_ids(model: Any, output: Any, prompt_length: int) -> Any:
    """The answer's tokens in generate's output: after the prompt (decoder-only), or after the decoder's
    start token (encoder-decoder; its special tokens are skipped when decoded)."""
    return output[:, 1:] if is_encoder_decoder(model) else output[:, prompt_length:]


def render_prompt(
    model: Any,
    tokenizer: Any,
    template: ChatTemplate | None,
    conversation: Mapping[str, Any],
    variables: Mapping[str, str],
) -> str:
    """The prompt text: the template's generation prompt; an encoder-decoder model's input (data/seq2seq.py)."""
    if is_encoder_decoder(model):
        from ftkit.data.seq2seq import prompt_text

        return prompt_text(
            template, tokenizer, conversation["messages"], conversation.get("system"), variables
        )
    assert template is not None
    return template.render_text(
        conversation["messages"], conversation.get("system"), add_generation_prompt=True, variables=variables
    )


def template_for(recipe: Recipe, model: Any, tokenizer: Any, what: str) -> ChatTemplate | None:
    """The recipe's template; an encoder-decoder model may go without one."""
    if recipe.model.template:
        return get_template(recipe.model.template, tokenizer)
    if is_encoder_decoder(model):
        return None
    raise UserError(f"{what} needs model.template in the recipe")


def generate(
    model: Any,
    tokenizer: Any,
    template: ChatTemplate | None,
    conversations: Sequence[dict[str, Any]],
    options: GenerationOptions = GenerationOptions(),
    progress: bool = False,
    template_vars: Mapping[str, str] | None = None,
) -> list[str]:
    """Answers for the conversations, in order, batched; `template_vars` as the recipe's data.template_vars."""
    import torch
    from tqdm.auto import tqdm
    from transformers import set_seed

    set_seed(options.seed)
    variables = {**token_variables(tokenizer), **(template_vars or {})}
    stops = template.stop_strings(variables) if template else []
    kwargs = generate_kwargs(tokenizer, template, options)
    encoder_decoder = is_encoder_decoder(model)
    tokenizer.padding_side = "right" if encoder_decoder else "left"
    model.eval()
    answers: list[str] = []
    starts = range(0, len(conversations), options.batch_size)
    for start in tqdm(starts, desc="Generating", unit="batch", disable=not (progress and interactive())):
        batch = conversations[start : start + options.batch_size]
        prompts = [render_prompt(model, tokenizer, template, c, variables) for c in batch]
        # A rendered chat prompt carries its special tokens; an encoder's input takes the tokenizer's.
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=encoder_decoder).to(
            model.device
        )
        with torch.inference_mode():
            output = model.generate(**inputs, **kwargs)
        rows = generated_ids(model, output, inputs["input_ids"].shape[1])
        answers += [answer_text(tokenizer, row, stops, skip_special=encoder_decoder) for row in rows]
    return answers


def generate_file(recipe: Recipe, request: GenerationRequest) -> list[dict[str, Any]]:
    """Answer every prompt of the input file; print them, or write JSONL to request.output."""
    conversations = read_conversations(request.input)
    model, tokenizer = load_for_inference(recipe, request.model)
    check_generates(model)
    template = template_for(recipe, model, tokenizer, "generation")
    answers = generate(
        model, tokenizer, template, conversations, request.options, True, recipe.data.template_vars
    )
    results = [{**c, "response": a} for c, a in zip(conversations, answers, strict=True)]
    if request.output:
        from ftkit.atomic import atomic_write_text

        atomic_write_text(request.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        log.info("wrote %d responses to %s", len(results), request.output)
    else:
        for result in results:
            print(f"### {result['messages'][-1]['content']}\n{result['response']}\n")
    return results


HELP = "Type a message. /reset starts a new conversation, /exit (or Ctrl-D, Ctrl-C) quits."
COMMAND = re.compile(r"^/[A-Za-z]+(\s|$)")
"""A chat command: `/word`, alone or with arguments (`/usr/bin ...`, a path, is a message)."""


def chat(
    recipe: Recipe,
    model_dir: str | None = None,
    options: GenerationOptions = GenerationOptions(max_new_tokens=256),
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
) -> list[dict[str, str]]:
    """A multi-turn conversation in the terminal, answers streamed as they are generated."""
    import torch

    model, tokenizer = load_for_inference(recipe, model_dir)
    check_generates(model)
    template = template_for(recipe, model, tokenizer, "chat")
    variables = {**token_variables(tokenizer), **recipe.data.template_vars}
    stops = template.stop_strings(variables) if template else []
    encoder_decoder = is_encoder_decoder(model)
    kwargs = generate_kwargs(tokenizer, template, options)
    model.eval()
    messages: list[dict[str, str]] = []
    print(HELP, file=out)
    while True:
        try:
            text = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt: leave
            print(file=out)
            break
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            messages = []
            print("(new conversation)", file=out)
            continue
        if COMMAND.match(text):
            print(f"unknown command {text.split()[0]}; {HELP}", file=out)
            continue
        if not text:
            continue
        messages.append({"role": "user", "content": text})
        conversation = {"messages": messages, "system": recipe.data.system}
        prompt = render_prompt(model, tokenizer, template, conversation, variables)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=encoder_decoder).to(model.device)
        print("model> ", end="", file=out, flush=True)
        streamer = _Stream(tokenizer, stops, out, skip_special=encoder_decoder)
        try:
            with torch.inference_mode():
                output = model.generate(**inputs, **kwargs, streamer=streamer)
        except KeyboardInterrupt:  # Ctrl-C while answering: drop this turn, keep the conversation
            messages.pop()
            print("\n(stopped; the message was not kept)", file=out, flush=True)
            continue
        row = generated_ids(model, output, inputs["input_ids"].shape[1])[0]
        answer = answer_text(tokenizer, row, stops, skip_special=encoder_decoder)
        print(file=out, flush=True)
        messages.append({"role": "assistant", "content": answer})
    return messages


class _Stream:
    """Write generated text as it arrives, holding back anything that could be the start of a stop string."""

    def __init__(self, tokenizer: Any, stops: list[str], out: TextIO, skip_special: bool = False) -> None:
        self.tokenizer, self.stops, self.out = tokenizer, [s for s in stops if s], out
        self.skip_special = skip_special
        self.ids: list[int] = []
        self.shown = 0
        self.prompt_seen = False
        self.done = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt
            self.prompt_seen = True
            return
        if self.done:
            return
        self.ids += value.reshape(-1).tolist()
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special)
        cut = min((text.index(s) for s in self.stops if s in text), default=None)
        if cut is not None:
            text, self.done = text[:cut], True
        else:  # keep back a possible partial stop marker and incomplete characters
            hold = max((len(s) - 1 for s in self.stops), default=0)
            text = text[: max(len(text) - hold, self.shown)].rstrip("\ufffd")
        if len(text) > self.shown:
            self.out.write(text[self.shown :])
            self.out.flush()
            self.shown = len(text)

    def end(self) -> None:
        if not self.done:
            text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special)
            for stop in self.stops:
                text = text.split(stop)[0]
            if len(text) > self.shown:
                self.out.write(text[self.shown :])
            self.out.flush()
