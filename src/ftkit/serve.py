"""`ftkit serve`: a trained model over an OpenAI-compatible HTTP API (FastAPI + uvicorn, `ftkit[serve]`).

GET /health, GET /v1/models, POST /v1/chat/completions (server-sent events with stream: true) and
POST /v1/completions. Chat prompts are rendered with the run's own chat template and generation stops at
its stop tokens, exactly as `ftkit generate` does (infer.py): a greedy answer here equals that command's.
One model, one generation at a time: requests wait in line (an asyncio lock) and are never interleaved.
With stream: true the answer's text is sent as server-sent events while its tokens are generated. The
engines (transformers, or vLLM with --engine vllm) are in serve_engines.py. Errors are OpenAI's JSON shape
with 400/401/404/422, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftkit.errors import UserError
from ftkit.serve_engines import ENGINES, Choice, Limits, Prompt, Served, resolve_served

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


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


class Engine:
    """An engine of serve_engines.py behind a lock: one generation at a time."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.lock = asyncio.Lock()

    def prompts(self, request: Sampling) -> list[Prompt]:
        if isinstance(request, ChatRequest):
            system = next((m.content for m in request.messages if m.role == "system"), None)
            messages = [m.model_dump() for m in request.messages if m.role != "system"]
            return [self.backend.render(messages, system)]
        assert isinstance(request, CompletionRequest)
        texts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        return [Prompt(text, chat=False) for text in texts]

    def choices(self, request: Sampling, on_text: Callable[[int, str], None] | None = None) -> list[Choice]:
        """Every choice of the request: n per prompt, the k-th sampled with seed + k."""
        choices = []
        for prompt in self.prompts(request):
            for index in range(request.n):
                limits = Limits(
                    request.max_tokens,
                    request.temperature,
                    request.top_p,
                    (request.seed or 0) + index,
                    request.stops(),
                )
                pieces = partial(on_text, len(choices)) if on_text else None
                choices.append(self.backend.generate(prompt, limits, pieces))
        return choices


def _error(status: int, message: str, kind: str, param: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": kind, "param": param, "code": None}},
    )


def create_app(served: Served, backend: Any, api_key: str | None) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="ftkit", docs_url=None, redoc_url=None, openapi_url=None)
    engine = Engine(backend)
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
        if request.stream:
            return StreamingResponse(
                _chat_events(engine, request, ident, now, served.name), media_type="text/event-stream"
            )
        async with engine.lock:
            choices = await asyncio.to_thread(engine.choices, request)
        return {
            "id": ident,
            "object": "chat.completion",
            "created": now,
            "model": served.name,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": choice.text},
                    "finish_reason": choice.finish_reason,
                }
                for i, choice in enumerate(choices)
            ],
            "usage": _usage(choices, request.n),
        }

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest) -> Any:
        if (refused := check_model(request.model)) is not None:
            return refused
        if request.stream:
            return _error(
                400, "stream is supported for chat completions only", "invalid_request_error", "stream"
            )
        async with engine.lock:
            choices = await asyncio.to_thread(engine.choices, request)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": served.name,
            "choices": [
                {"index": i, "text": choice.text, "finish_reason": choice.finish_reason, "logprobs": None}
                for i, choice in enumerate(choices)
            ],
            "usage": _usage(choices, request.n),
        }

    return app


def _usage(choices: list[Choice], n: int) -> dict[str, int]:
    # A prompt counts once for its n choices, as OpenAI counts.
    prompt = sum(choice.prompt_tokens for choice in choices[::n])
    completion = sum(choice.completion_tokens for choice in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _chat_events(
    engine: Engine, request: ChatRequest, ident: str, created: int, name: str
) -> AsyncIterator[str]:
    """Server-sent events while the answers are generated: per choice its role, its text in pieces as they
    come, its end with the finish reason; then [DONE]. A client that goes away stops the generation."""

    def event(index: int, delta: dict[str, str], finish: str | None) -> str:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
    started: set[int] = set()
    gone = False

    def on_text(index: int, text: str) -> None:
        if gone:
            raise _ClientGone
        loop.call_soon_threadsafe(queue.put_nowait, (index, text))

    def run() -> list[Choice]:
        try:
            return engine.choices(request, on_text)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    async with engine.lock:
        work = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            while (item := await queue.get()) is not None:
                index, text = item
                if index not in started:
                    started.add(index)
                    yield event(index, {"role": "assistant", "content": ""}, None)
                yield event(index, {"content": text}, None)
            try:
                choices = await work
            except Exception as exc:
                log.exception("streamed request failed")
                failure = {"message": f"generation failed: {type(exc).__name__}", "type": "server_error"}
                yield f"data: {json.dumps({'error': failure})}\n\n"
                return
            for index, choice in enumerate(choices):
                if index not in started:
                    yield event(index, {"role": "assistant", "content": ""}, None)
                yield event(index, {}, choice.finish_reason)
            yield "data: [DONE]\n\n"
        finally:
            # The client went away (or the server stops): end the generation before the next request runs.
            gone = True
            await asyncio.gather(work, return_exceptions=True)


class _ClientGone(Exception):
    """Raised in the generating thread when the streaming client has disconnected."""


def serve(target: str, host: str, port: int, api_key: str | None, engine: str = "transformers") -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    if api_key is None and host not in LOCAL_HOSTS:
        raise UserError(
            f"serving on {host} without --api-key would let anyone on the network use it: pass --api-key KEY, or keep --host 127.0.0.1"
        )
    served = resolve_served(target)
    backend = ENGINES[engine](served)
    if api_key is None:
        log.info("no --api-key: serving on %s only, without authentication", host)
    log.info(
        "serving %s with %s at http://%s:%d/v1 (chat template %s)",
        served.name,
        engine,
        host,
        port,
        served.template_name,
    )
    uvicorn.run(create_app(served, backend, api_key), host=host, port=port, log_level="warning")
