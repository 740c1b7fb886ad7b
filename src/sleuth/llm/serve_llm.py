"""An OpenAI-compatible ``/v1/chat/completions`` in front of any in-process ``LLM``.

Lets several processes (evaluation workers, a trainer) share one loaded model, and lets the
HTTP backend be tested against a real server.

A client that disconnects cancels its request: the backend stops decoding it (a stream's
consumer is cancelled by Litestar; a plain request watches for ``http.disconnect``). At most
``max_concurrency`` requests are handed to the model and ``max_queued`` more wait their turn;
beyond that a 503 with ``Retry-After``. ``/health`` counts active, queued, abandoned and
refused requests (docs/llm.md). Bad fields are 400s naming the field; anything unexpected is
logged with its traceback (``sleuth.serve.error``) and answered 500, or, in a stream, an SSE
error event followed by ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.response import Stream

from sleuth.display import one_line
from sleuth.errors import LLMError
from sleuth.http_guard import HostAllowList, RequestGuard
from sleuth.llm.base import LLM, GenerationConfig
from sleuth.llm.constraint import Constraint, check_constraint
from sleuth.tokens import token_matches

ROLES = {"system", "user", "assistant", "tool"}


MAX_TOKENS_LIMIT = 4096
MAX_SEED = 2**63 - 1  # what every backend takes (OpenVINO's size_t, torch's manual_seed)
RETRY_AFTER_S = 1
# The servers' error log (configured by the CLI, ``sleuth.serve.access_log``; named, not
# imported, as the model floor may not import the server floor).
ERROR_LOG = logging.getLogger("sleuth.serve.error")
T = TypeVar("T")


class ChatRequest(msgspec.Struct):
    messages: list[dict[str, Any]]
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool = False
    n: int = 1
    # Decoding constraints, as vLLM takes them (structured_outputs) and OpenAI (response_format).
    structured_outputs: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


def _constraint(request: ChatRequest) -> Constraint | None:
    constraint = _requested_constraint(request)
    if constraint is not None:
        try:
            check_constraint(constraint)
        except LLMError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
    return constraint


def _requested_constraint(request: ChatRequest) -> Constraint | None:
    structured = request.structured_outputs or {}
    unknown = set(structured) - {"regex", "json"}
    if unknown:
        raise HTTPException(
            status_code=400,
            detail=f"structured_outputs supports regex and json here, not {sorted(unknown)}",
        )
    if isinstance(structured.get("regex"), str):
        if not structured["regex"]:
            raise HTTPException(
                status_code=400, detail="structured_outputs.regex is empty; give a pattern"
            )
        return Constraint(kind="regex", pattern=structured["regex"])
    if isinstance(structured.get("json"), dict):
        return Constraint(kind="json_schema", schema=structured["json"])
    if structured:
        raise HTTPException(
            status_code=400, detail="structured_outputs.regex must be a string, .json an object"
        )
    response_format = request.response_format or {}
    kind = response_format.get("type", "text")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise HTTPException(
                status_code=400, detail="response_format.json_schema.schema must be an object"
            )
        return Constraint(kind="json_schema", schema=schema)
    if kind == "json_object":
        return Constraint(kind="json_schema", schema={"type": "object"})
    if kind != "text":
        raise HTTPException(
            status_code=400,
            detail="response_format.type must be text, json_object or json_schema",
        )
    return None


def _validate(request: ChatRequest, served: str, context: int | None) -> GenerationConfig:
    if not request.messages:
        raise HTTPException(status_code=400, detail="messages is empty")
    if request.model not in (None, "", served, "default"):
        raise HTTPException(
            status_code=404,
            detail=f"the model {request.model!r} is not served here; this server serves {served!r}",
        )
    if request.n != 1:
        raise HTTPException(status_code=400, detail="n must be 1 (one choice per request)")
    for n, message in enumerate(request.messages):
        if message.get("role") not in ROLES:
            raise HTTPException(
                status_code=400, detail=f"messages[{n}].role must be one of {sorted(ROLES)}"
            )
        if not isinstance(message.get("content") or "", str):
            raise HTTPException(status_code=400, detail=f"messages[{n}].content must be a string")
    max_tokens = _first_set(request.max_completion_tokens, request.max_tokens, 256)
    limit = min(MAX_TOKENS_LIMIT, context) if context else MAX_TOKENS_LIMIT
    if not 1 <= max_tokens <= limit:
        raise HTTPException(status_code=400, detail=f"max_tokens must be in 1..{limit}")
    _check_tools(request.tools)
    if not 0 <= request.temperature <= 2 or not 0 < request.top_p <= 1:
        raise HTTPException(
            status_code=400, detail="temperature must be in 0..2 and top_p in (0, 1]"
        )
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return GenerationConfig(
        max_tokens=max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=stops,
        seed=_seed(request.seed),
        constraint=_constraint(request),
    )


def _first_set(*values: int | None) -> int:
    """The first value given: ``max_tokens: 0`` is a value (refused), not "use the default"."""
    return next(v for v in values if v is not None)


def _seed(seed: int | None) -> int | None:
    """``-1`` is what several clients send for "random": no seed. Others must fit 0..2**63-1
    (a larger one overflowed the backend's seed type: a 500)."""
    if seed is None or seed == -1:
        return None
    if not 0 <= seed <= MAX_SEED:
        raise HTTPException(
            status_code=400, detail=f"seed must be in 0..{MAX_SEED} (or -1 for a random seed)"
        )
    return seed


def _check_tools(tools: list[dict[str, Any]] | None) -> None:
    """Each tool as OpenAI defines it: ``{"type": "function", "function": {"name": ...}}``."""
    for n, tool in enumerate(tools or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise HTTPException(
                status_code=400,
                detail=f'tools[{n}] must be {{"type": "function", "function": {{"name": ...}}}}',
            )
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPException(
                status_code=400, detail=f"tools[{n}].function.name must be a non-empty string"
            )
        if not isinstance(function.get("parameters", {}), dict):
            raise HTTPException(
                status_code=400, detail=f"tools[{n}].function.parameters must be an object"
            )


def _check_context(llm: LLM, messages: list[dict[str, Any]], config: GenerationConfig) -> int:
    """The prompt's token count; 400 when prompt + max_tokens do not fit the model's context."""
    context = getattr(llm, "context_length", None)
    count = getattr(llm, "count_tokens", None)
    if not context or count is None:
        return 0
    prompt = count(messages)
    if prompt + config.max_tokens > context:
        raise HTTPException(
            status_code=400,
            detail=f"the prompt is {prompt} tokens and max_tokens {config.max_tokens}: together "
            f"more than the model's context of {context} tokens; shorten the prompt",
        )
    return prompt


def _error(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    detail = exc.detail + (f": {exc.extra}" if getattr(exc, "extra", None) else "")
    return Response(
        {"error": {"message": detail, "code": exc.status_code}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _unexpected(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """A bug or an environment fault: logged with its traceback, answered without internals."""
    _log_unexpected(f"{request.method} {one_line(request.url.path, 300)}", exc)
    return Response(
        {"error": {"message": UNEXPECTED, "code": 500}},
        status_code=500,
    )


UNEXPECTED = "internal server error (the traceback is in the server's log)"


def _log_unexpected(where: str, exc: BaseException) -> None:
    ERROR_LOG.error("unhandled error in %s", where, exc_info=exc)


def _error_body(status: int, message: str) -> tuple[bytes, bytes]:
    body = msgspec.json.encode({"error": {"message": message, "code": status}})
    return b"application/json", body


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass
class Traffic:
    """Requests handed to the model (``active``, at most ``max_concurrency``), waiting for a
    turn (``queued``, at most ``max_queued``), cancelled because the client left
    (``abandoned``) and turned away with a 503 (``rejected``)."""

    max_concurrency: int
    max_queued: int
    active: int = 0
    queued: int = 0
    abandoned: int = 0
    rejected: int = 0
    _gate: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._gate = asyncio.Semaphore(self.max_concurrency)

    def admit(self) -> None:
        """Refuse a request that would wait beyond ``max_queued`` (503, with Retry-After)."""
        if self.active >= self.max_concurrency and self.queued >= self.max_queued:
            self.rejected += 1
            raise HTTPException(
                status_code=503,
                detail=f"the server is busy: {self.active} requests decoding and "
                f"{self.queued} waiting (--max-queued {self.max_queued}); retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn at the model (counted as queued), then hold it (counted active)."""
        self.queued += 1
        try:
            await self._gate.acquire()
        except asyncio.CancelledError:  # the client left while waiting
            self.abandoned += 1
            raise
        finally:
            self.queued -= 1
        self.active += 1
        try:
            yield
        except (asyncio.CancelledError, ClientGone):
            self.abandoned += 1
            raise
        finally:
            self.active -= 1
            self._gate.release()

    def public(self) -> dict[str, int]:
        return {
            "active": self.active,
            "queued": self.queued,
            "abandoned": self.abandoned,
            "rejected": self.rejected,
            "max_concurrency": self.max_concurrency,
            "max_queued": self.max_queued,
        }


async def _until_disconnect(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(
    work: Awaitable[T], receive: Callable[[], Awaitable[dict[str, Any]]]
) -> T:
    """``work``'s result, or ``ClientGone`` (``work`` cancelled) once the client disconnects.

    Why: uvicorn does not cancel a handler whose client left, so a plain (not streamed)
    request kept the model decoding its answer for no one."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise ClientGone
    return task.result()


def create_llm_app(
    llm: LLM,
    *,
    token: str | None = None,
    max_concurrency: int = 64,
    max_queued: int = 256,
    max_body_bytes: int = 1024 * 1024,
    allowed_hosts: HostAllowList | None = None,
) -> Litestar:
    """The app. Requests are handed to the backend concurrently (``max_concurrency`` at once,
    ``max_queued`` more waiting, then 503s): a batching backend (OpenVINO) then decodes them
    together. The token is checked before the body is read (a guard); a foreign ``Host`` is a
    421, a foreign ``Origin`` a 403 and a chat body not declared JSON a 415
    (``sleuth.http_guard``)."""
    if max_concurrency < 1 or max_queued < 0:
        raise ValueError("max_concurrency must be at least 1 and max_queued at least 0")
    traffic = Traffic(max_concurrency, max_queued)
    context = getattr(llm, "context_length", None)

    def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        if token is None or handler.opt.get("public"):
            return
        if not token_matches(token, connection.headers.get("authorization")):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    def envelope(kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": kind,
            "created": int(time.time()),
            "model": llm.name,
        }

    async def generate_events(
        data: ChatRequest, config: GenerationConfig, head: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        """The content chunks and the closing chunk (cancelled when the client leaves)."""
        async with traffic.turn():
            streamer = getattr(llm, "stream", None)
            if streamer is not None and config.constraint is None and not data.tools:
                async for piece in streamer(data.messages, config):
                    delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    yield _sse({**head, "choices": [delta]})
                finish = "stop"
            else:  # backends without token streaming: one chunk with the whole text
                completion = await llm.complete(data.messages, config, data.tools)
                delta = {"index": 0, "delta": {"content": completion.text}}
                yield _sse({**head, "choices": [delta]})
                finish = completion.finish_reason
        yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})

    async def stream_events(data: ChatRequest, config: GenerationConfig) -> AsyncIterator[bytes]:
        """Server-sent events; a failure after the first byte is an error event, then
        ``[DONE]`` (the status line is long gone), so clients see why the stream ended."""
        head = envelope("chat.completion.chunk")
        first = {**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        yield _sse(first)
        try:
            async for event in generate_events(data, config, head):
                yield event
        except LLMError as exc:
            yield _sse({"error": {"message": str(exc), "code": 502}})
        except Exception as exc:
            _log_unexpected("POST /v1/chat/completions (stream)", exc)
            yield _sse({"error": {"message": UNEXPECTED, "code": 500}})
        yield b"data: [DONE]\n\n"

    async def complete(data: ChatRequest, config: GenerationConfig) -> Any:
        async with traffic.turn():
            return await llm.complete(data.messages, config, data.tools)

    @post("/v1/chat/completions", status_code=200)
    async def chat(request: Request, data: JSONBody[ChatRequest]) -> Any:
        """OpenAI chat completion; ``stream: true`` answers with server-sent events."""
        config = _validate(data, llm.name, context)
        _check_context(llm, data.messages, config)
        traffic.admit()
        if data.stream:
            return Stream(
                stream_events(data, config),
                media_type="text/event-stream",
                headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
            )
        try:
            completion = await unless_client_leaves(complete(data, config), request.receive)
        except LLMError as exc:
            raise HTTPException(status_code=502, detail=str(exc)) from None
        except ClientGone:  # nobody reads the answer; 499 is what the access log shows
            gone = {"error": {"message": "client closed request", "code": 499}}
            return Response(gone, status_code=499)
        message: dict[str, Any] = {"role": "assistant", "content": completion.text}
        if completion.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": msgspec.json.encode(call.arguments).decode(),
                    },
                }
                for call in completion.tool_calls
            ]
        return {
            **envelope("chat.completion"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": completion.finish_reason}
            ],
            "usage": {
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "total_tokens": completion.usage.total_tokens,
            },
        }

    @get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": llm.name, "object": "model", "owned_by": "sleuth"}],
        }

    @get("/health", opt={"public": True})
    async def health() -> dict[str, Any]:
        """Liveness, the model, the request counters and what the engine reports."""
        stats = getattr(llm, "stats", None)
        return {
            "status": "ok",
            "model": llm.name,
            "requests": traffic.public(),
            "engine": stats() if stats is not None else {},
        }

    app = Litestar(
        route_handlers=[chat, models, health],
        guards=[require_token],
        exception_handlers={HTTPException: _error, Exception: _unexpected},
        request_max_body_size=max_body_bytes,
        debug=False,
        logging_config=None,  # leave the process's logging alone: sleuth.serve.* loggers only
    )
    app.asgi_handler = RequestGuard(
        app.asgi_handler,
        allowed_hosts,
        json_paths=("/v1/chat/completions",),
        render=_error_body,
        max_body_bytes=max_body_bytes,
    )
    return app


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"
