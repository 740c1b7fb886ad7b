"""An OpenAI-compatible ``/v1/chat/completions`` in front of any in-process ``LLM``.

Lets several processes (evaluation workers, a trainer) share one loaded model, and lets the
HTTP backend be tested against a real server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.response import Stream

from sleuth.errors import LLMError
from sleuth.http_guard import HostAllowList, RequestGuard
from sleuth.llm.base import LLM, GenerationConfig
from sleuth.llm.constraint import Constraint, check_constraint
from sleuth.tokens import token_matches

ROLES = {"system", "user", "assistant", "tool"}


MAX_TOKENS_LIMIT = 4096


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
    max_tokens = request.max_completion_tokens or request.max_tokens or 256
    limit = min(MAX_TOKENS_LIMIT, context) if context else MAX_TOKENS_LIMIT
    if not 1 <= max_tokens <= limit:
        raise HTTPException(status_code=400, detail=f"max_tokens must be in 1..{limit}")
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
        seed=request.seed,
        constraint=_constraint(request),
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
        {"error": {"message": detail, "code": exc.status_code}}, status_code=exc.status_code
    )


def _error_body(status: int, message: str) -> tuple[bytes, bytes]:
    body = msgspec.json.encode({"error": {"message": message, "code": status}})
    return b"application/json", body


def create_llm_app(
    llm: LLM,
    *,
    token: str | None = None,
    max_concurrency: int = 64,
    max_body_bytes: int = 1024 * 1024,
    allowed_hosts: HostAllowList | None = None,
) -> Litestar:
    """The app. Requests are handed to the backend concurrently (``max_concurrency`` at once):
    a batching backend (OpenVINO) then decodes them together. The token is checked before the
    body is read (a guard); a foreign ``Host`` is a 421, a foreign ``Origin`` a 403 and a chat
    body not declared JSON a 415 (``sleuth.http_guard``)."""
    gate = asyncio.Semaphore(max_concurrency)
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

    async def stream_events(data: ChatRequest, config: GenerationConfig) -> AsyncIterator[bytes]:
        head = envelope("chat.completion.chunk")
        first = {**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        yield _sse(first)
        async with gate:
            streamer = getattr(llm, "stream", None)
            try:
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
            except LLMError as exc:
                yield _sse({"error": {"message": str(exc), "code": 502}})
                return
        yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        yield b"data: [DONE]\n\n"

    @post("/v1/chat/completions", status_code=200)
    async def chat(data: JSONBody[ChatRequest]) -> Any:
        """OpenAI chat completion; ``stream: true`` answers with server-sent events."""
        config = _validate(data, llm.name, context)
        _check_context(llm, data.messages, config)
        if data.stream:
            return Stream(
                stream_events(data, config),
                media_type="text/event-stream",
                headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
            )
        async with gate:
            try:
                completion = await llm.complete(data.messages, config, data.tools)
            except LLMError as exc:
                raise HTTPException(status_code=502, detail=str(exc)) from None
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
        return {"status": "ok", "model": llm.name}

    app = Litestar(
        route_handlers=[chat, models, health],
        guards=[require_token],
        exception_handlers={HTTPException: _error},
        request_max_body_size=max_body_bytes,
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
