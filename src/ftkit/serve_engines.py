"""What `ftkit serve` generates with: the served model and its chat template, and one engine per backend
(ENGINES): transformers' generate in this process, or vLLM on a CUDA GPU.

Both engines decode the generated tokens the same way (`Answer`): the text is cut at the template's stop
strings and the request's `stop`, and stripped, exactly as `ftkit generate` does. While tokens arrive,
the text shown so far holds back what could still turn out to be the start of a stop string, so a
streamed answer is the non-streamed answer sent in pieces.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import UserError
from ftkit.templates import ChatTemplate, token_variables

log = logging.getLogger(__name__)
OnText = Callable[[str], None]
"""Receives each new piece of an answer's text while it is generated."""


@dataclass
class Served:
    """The model a server answers with: its name, chat template and where its weights are."""

    name: str
    template_name: str
    template_vars: dict[str, str]
    recipe: Any = None
    """The run's recipe (a recipe or run directory was given); None for a model directory."""
    model_dir: str | None = None
    """A model directory to load as it is: the one given, or the recipe's merged export."""


def resolve_served(target: str) -> Served:
    """A recipe, a run directory or a model directory, with the chat template it was trained with."""
    from ftkit.config import load_recipe
    from ftkit.runfiles import RESOLVED_RECIPE_FILE

    path = Path(target)
    recipe_path = path if path.is_file() else path / RESOLVED_RECIPE_FILE
    if recipe_path.is_file():
        recipe = load_recipe(recipe_path)
        if not recipe.model.template:
            raise UserError(f"{target}: the recipe has no model.template to render chat prompts with")
        export_dir = Path(recipe.export.output_dir or "")
        return Served(
            recipe.logging.run_name or path.stem,
            recipe.model.template,
            dict(recipe.data.template_vars),
            recipe=recipe,
            model_dir=str(export_dir) if (export_dir / "config.json").is_file() else None,
        )
    if (path / "config.json").is_file():
        export = path / "export.json"
        template = (
            json.loads(export.read_text()).get("template") if export.is_file() else None
        ) or "tokenizer"
        return Served(path.name, template, {}, model_dir=str(path))
    raise UserError(
        f"{target}: not a recipe, a run directory (with {RESOLVED_RECIPE_FILE}) or a model directory"
    )


@dataclass
class Prompt:
    text: str
    chat: bool
    """A rendered chat prompt (its special tokens are in the text) rather than raw completion text."""


@dataclass
class Choice:
    text: str
    finish_reason: str
    """stop: a stop token or string ended it; length: max_tokens did."""
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Limits:
    """A request's sampling settings, as the engines take them."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stops: list[str] = field(default_factory=list)


class Answer:
    """The text of an answer as its tokens arrive: cut at the template's stop strings (and the pad token)
    and at the request's, and stripped of surrounding whitespace."""

    def __init__(
        self, tokenizer: Any, template_stops: list[str], request_stops: list[str], on_text: OnText | None
    ):
        self.tokenizer = tokenizer
        self.template_stops = [stop for stop in [*template_stops, tokenizer.pad_token or ""] if stop]
        self.request_stops = [stop for stop in request_stops if stop]
        self.on_text = on_text
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = threading.Event()
        """Set once a stop string is in the text: generation can end."""

    def add(self, ids: list[int]) -> None:
        self.ids.extend(ids)
        text = self.visible(finished=False)
        if self.on_text and text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_text(text[len(self.sent) :])
            self.sent = text

    def finish(self) -> str:
        text = self.visible(finished=True)
        if self.on_text and text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_text(text[len(self.sent) :])
        return text

    def visible(self, finished: bool) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        text, cut = _cut(text, self.template_stops)
        # The request's stop strings are looked for before trailing spaces are stripped: a stop that
        # ends in a space is found when the answer stops right after it.
        text, cut_here = _cut(text.lstrip(), self.request_stops)
        if cut or cut_here:
            self.stopped.set()
        elif not finished:
            text = _hold_back(text, [*self.template_stops, *self.request_stops])
        return text.rstrip()


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    positions = [text.index(stop) for stop in stops if stop in text]
    return (text[: min(positions)], True) if positions else (text, False)


def _hold_back(text: str, stops: list[str]) -> str:
    """The text without an unfinished character or a tail that may begin a stop string."""
    text = text.rstrip("\ufffd")
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return text[: len(text) - held]


class TransformersEngine:
    """transformers' generate in this process, one answer at a time."""

    name = "transformers"

    def __init__(self, served: Served) -> None:
        from ftkit.infer import check_generates, load_for_inference
        from ftkit.models.loader import load_model_dir
        from ftkit.templates import get_template

        model, tokenizer = (
            load_model_dir(served.model_dir) if served.recipe is None else load_for_inference(served.recipe)
        )
        check_generates(model)
        if getattr(model.config, "is_encoder_decoder", False):
            raise UserError(
                "ftkit serve answers with decoder-only models; use ftkit generate or ftkit chat for an "
                "encoder-decoder model"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.template: ChatTemplate = get_template(served.template_name, tokenizer)
        self.variables = {**token_variables(tokenizer), **served.template_vars}

    def render(self, messages: list[dict[str, str]], system: str | None) -> Prompt:
        return Prompt(
            self.template.render_text(messages, system, add_generation_prompt=True, variables=self.variables),
            True,
        )

    def generate(self, prompt: Prompt, limits: Limits, on_text: OnText | None = None) -> Choice:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, set_seed
        from transformers.generation.streamers import BaseStreamer

        from ftkit.infer import GenerationOptions, generate_kwargs

        options = GenerationOptions(
            max_new_tokens=limits.max_tokens,
            temperature=limits.temperature,
            top_p=limits.top_p,
            seed=limits.seed,
        )
        set_seed(limits.seed)
        # As `ftkit generate` tokenizes: a rendered chat prompt carries its special tokens already.
        inputs = self.tokenizer([prompt.text], return_tensors="pt", add_special_tokens=not prompt.chat).to(
            self.model.device
        )
        answer = Answer(self.tokenizer, self.template.stop_strings(self.variables), limits.stops, on_text)

        class Stream(BaseStreamer):
            prompt_seen = False

            def put(self, value: Any) -> None:
                if self.prompt_seen:  # the first call carries the prompt
                    answer.add(value.reshape(-1).tolist())
                self.prompt_seen = True

            def end(self) -> None:
                pass

        class Stopped(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), answer.stopped.is_set(), dtype=torch.bool)

        kwargs = generate_kwargs(self.tokenizer, self.template, options)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, **kwargs, streamer=Stream(), stopping_criteria=StoppingCriteriaList([Stopped()])
            )
        generated = output[0, inputs["input_ids"].shape[1] :].tolist()
        text = answer.finish()
        ended = bool(generated) and generated[-1] in kwargs["eos_token_id"]
        reason = (
            "stop" if ended or answer.stopped.is_set() or len(generated) < limits.max_tokens else "length"
        )
        return Choice(text, reason, inputs["input_ids"].shape[1], len(generated))


class VllmEngine:
    """vLLM's engine on a CUDA GPU, serving a merged model directory. Prompts are rendered and tokenized by
    ftkit (the run's template and tokenizer) and passed to vLLM as token ids; the answers are decoded by
    `Answer` as with transformers. A streamed answer arrives whole, in one piece."""

    name = "vllm"

    def __init__(self, served: Served) -> None:
        from transformers import AutoTokenizer

        from ftkit.models.special_tokens import stop_token_ids
        from ftkit.templates import get_template

        if served.model_dir is None:
            raise UserError(
                "--engine vllm serves a merged model: run `ftkit export RECIPE` first (the run holds an adapter)"
            )
        try:
            from vllm import LLM
        except ImportError:
            raise UserError("--engine vllm needs vLLM: pip install 'ftkit[vllm]' (CUDA GPUs)") from None
        self.tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
        self.template = get_template(served.template_name, self.tokenizer)
        self.variables = {**token_variables(self.tokenizer), **served.template_vars}
        self.stop_ids = stop_token_ids(self.tokenizer, self.template)
        config = json.loads((Path(served.model_dir) / "config.json").read_text())
        # vLLM's "auto" turns float32 weights into half precision: keep the exported dtype, so that answers
        # are the ones `ftkit verify` compares.
        self.llm = LLM(
            model=served.model_dir, dtype=config.get("dtype") or config.get("torch_dtype") or "auto", seed=0
        )

    render = TransformersEngine.render

    def generate(self, prompt: Prompt, limits: Limits, on_text: OnText | None = None) -> Choice:
        from vllm import SamplingParams

        ids = self.tokenizer(prompt.text, add_special_tokens=not prompt.chat)["input_ids"]
        params = SamplingParams(
            max_tokens=limits.max_tokens,
            temperature=limits.temperature,
            top_p=limits.top_p,
            seed=limits.seed,
            stop_token_ids=self.stop_ids,
            stop=limits.stops or None,
        )
        [result] = self.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
        output = result.outputs[0]
        answer = Answer(self.tokenizer, self.template.stop_strings(self.variables), limits.stops, on_text)
        answer.add(list(output.token_ids))
        text = answer.finish()
        reason = "length" if output.finish_reason == "length" and not answer.stopped.is_set() else "stop"
        return Choice(text, reason, len(ids), len(output.token_ids))


ENGINES: dict[str, Callable[[Served], Any]] = {"transformers": TransformersEngine, "vllm": VllmEngine}
