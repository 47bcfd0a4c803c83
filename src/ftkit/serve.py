"""`ftkit serve`: a trained model over an OpenAI-compatible HTTP API (FastAPI + uvicorn, `ftkit[serve]`).

GET /health, GET /v1/models, POST /v1/chat/completions (server-sent events with stream: true) and
POST /v1/completions. Chat prompts are rendered with the run's own chat template and generation stops at
its stop tokens, exactly as `ftkit generate` does (infer.py): a greedy answer here equals that command's.
One model, one generation at a time: requests wait in line (an asyncio lock) and are never interleaved.
With stream: true the answer is sent as server-sent events once it is generated (not token by token).
Errors are OpenAI's JSON shape with 400/401/404/422, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftkit.errors import UserError
from ftkit.infer import GenerationOptions, generate
from ftkit.templates import ChatTemplate, token_variables

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class Served:
    name: str
    model: Any
    tokenizer: Any
    template: ChatTemplate
    template_vars: dict[str, str]


def load_served(target: str) -> Served:
    """A recipe, a run directory or a model directory, with the chat template it was trained with."""
    from ftkit.config import load_recipe
    from ftkit.infer import check_generates, load_for_inference
    from ftkit.models.loader import load_model_dir
    from ftkit.runfiles import RESOLVED_RECIPE_FILE
    from ftkit.templates import get_template

    path = Path(target)
    recipe_path = path if path.is_file() else path / RESOLVED_RECIPE_FILE
    if recipe_path.is_file():
        recipe = load_recipe(recipe_path)
        if not recipe.model.template:
            raise UserError(f"{target}: the recipe has no model.template to render chat prompts with")
        model, tokenizer = load_for_inference(recipe)
        name, variables, template_name = (
            recipe.logging.run_name or path.stem,
            recipe.data.template_vars,
            recipe.model.template,
        )
    elif (path / "config.json").is_file():
        model, tokenizer = load_model_dir(target)
        export = path / "export.json"
        template_name = (
            json.loads(export.read_text()).get("template") if export.is_file() else None
        ) or "tokenizer"
        name, variables = path.name, {}
    else:
        raise UserError(
            f"{target}: not a recipe, a run directory (with {RESOLVED_RECIPE_FILE}) or a model directory"
        )
    check_generates(model)
    return Served(name, model.eval(), tokenizer, get_template(template_name, tokenizer), dict(variables))


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Message(_Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class Sampling(_Body):
    model: str | None = None
    max_tokens: int = Field(256, ge=1, le=32768)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(Sampling):
    prompt: str | list[str]


def _cut(text: str, stops: list[str]) -> str:
    """The text up to the first of the request's `stop` strings."""
    positions = [text.index(stop) for stop in stops if stop and stop in text]
    return text[: min(positions)] if positions else text


class Engine:
    """Generation for the served model, one request at a time."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.lock = asyncio.Lock()

    def _options(self, request: Sampling, seed: int) -> GenerationOptions:
        return GenerationOptions(
            max_new_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            batch_size=1,
            seed=seed,
        )

    def chat(self, request: ChatRequest) -> list[str]:
        served = self.served
        system = next((m.content for m in request.messages if m.role == "system"), None)
        messages = [m.model_dump() for m in request.messages if m.role != "system"]
        answers = []
        for index in range(request.n):
            options = self._options(request, (request.seed or 0) + index)
            [text] = generate(
                served.model,
                served.tokenizer,
                served.template,
                [{"system": system, "messages": messages}],
                options,
                template_vars=served.template_vars,
            )
            answers.append(_cut(text, request.stops()))
        return answers

    def complete(self, request: CompletionRequest) -> list[str]:
        import torch
        from transformers import set_seed

        from ftkit.infer import answer_text, generate_kwargs

        served = self.served
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        answers = []
        for prompt in prompts:
            for index in range(request.n):
                options = self._options(request, (request.seed or 0) + index)
                set_seed(options.seed)
                inputs = served.tokenizer([prompt], return_tensors="pt").to(served.model.device)
                with torch.inference_mode():
                    output = served.model.generate(
                        **inputs, **generate_kwargs(served.tokenizer, served.template, options)
                    )
                stops = served.template.stop_strings(token_variables(served.tokenizer))
                text = answer_text(served.tokenizer, output[0, inputs["input_ids"].shape[1] :], stops)
                answers.append(_cut(text, request.stops()))
        return answers


def _error(status: int, message: str, kind: str, param: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": kind, "param": param, "code": None}},
    )


def create_app(served: Served, api_key: str | None) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="ftkit", docs_url=None, redoc_url=None, openapi_url=None)
    engine = Engine(served)
    created = int(time.time())

    @app.middleware("http")
    async def authorize(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(
                    401, "invalid or missing API key (Authorization: Bearer KEY)", "invalid_request_error"
                )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        problems = exc.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return _error(400, "the request body is not valid JSON", "invalid_request_error")
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return _error(
            422, f"{where or 'body'}: {first.get('msg', 'invalid request')}", "invalid_request_error", where
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        return _error(exc.status_code, str(exc.detail), "invalid_request_error")

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Any:
        log.exception("request failed")
        return _error(500, f"generation failed: {type(exc).__name__}", "server_error")

    def check_model(name: str | None) -> Any:
        if name not in (None, served.name):
            return _error(
                404,
                f"model {name!r} is not served here; this server serves {served.name!r}",
                "invalid_request_error",
                "model",
            )
        return None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": served.name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served.name, "object": "model", "created": created, "owned_by": "ftkit"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> Any:
        if (refused := check_model(request.model)) is not None:
            return refused
        ident, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        async with engine.lock:
            answers = await asyncio.to_thread(engine.chat, request)
        if request.stream:
            return StreamingResponse(
                _chat_events(ident, now, served.name, answers), media_type="text/event-stream"
            )
        return {
            "id": ident,
            "object": "chat.completion",
            "created": now,
            "model": served.name,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                for i, text in enumerate(answers)
            ],
            "usage": _usage(served.tokenizer, [m.content for m in request.messages], answers),
        }

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest) -> Any:
        if (refused := check_model(request.model)) is not None:
            return refused
        async with engine.lock:
            answers = await asyncio.to_thread(engine.complete, request)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": served.name,
            "choices": [
                {"index": i, "text": text, "finish_reason": "stop", "logprobs": None}
                for i, text in enumerate(answers)
            ],
            "usage": _usage(
                served.tokenizer,
                [request.prompt] if isinstance(request.prompt, str) else request.prompt,
                answers,
            ),
        }

    return app


def _usage(tokenizer: Any, prompts: list[str], answers: list[str]) -> dict[str, int]:
    prompt = sum(len(tokenizer.encode(text, add_special_tokens=False)) for text in prompts)
    completion = sum(len(tokenizer.encode(text, add_special_tokens=False)) for text in answers)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _chat_events(ident: str, created: int, name: str, answers: list[str]) -> AsyncIterator[str]:
    """Server-sent events: the role, the answer's text, its end, per choice; then [DONE]."""

    def event(index: int, delta: dict[str, str], finish: str | None) -> str:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    for index, text in enumerate(answers):
        yield event(index, {"role": "assistant", "content": ""}, None)
        for piece in _pieces(text):
            yield event(index, {"content": piece}, None)
        yield event(index, {}, "stop")
    yield "data: [DONE]\n\n"


def _pieces(text: str, size: int = 16) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)] or []


def serve(target: str, host: str, port: int, api_key: str | None) -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    if api_key is None and host not in LOCAL_HOSTS:
        raise UserError(
            f"serving on {host} without --api-key would let anyone on the network use it: pass --api-key KEY, or keep --host 127.0.0.1"
        )
    served = load_served(target)
    if api_key is None:
        log.info("no --api-key: serving on %s only, without authentication", host)
    log.info(
        "serving %s at http://%s:%d/v1 (chat template %s)", served.name, host, port, served.template.name
    )
    uvicorn.run(create_app(served, api_key), host=host, port=port, log_level="warning")
