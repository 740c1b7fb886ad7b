"""Any OpenAI-compatible chat endpoint: vLLM, SGLang, Ollama, llama.cpp server, OpenAI."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

import httpx

from sleuth.errors import LLMError
from sleuth.llm.base import Completion, GenerationConfig, Message, ToolCall, Usage
from sleuth.llm.constraint import Constraint
from sleuth.llm.scripted import approx_tokens

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
# How each kind of server takes a decoding constraint (see constraint_fields).
DIALECTS = ("auto", "vllm", "vllm-legacy", "sglang", "llamacpp", "openai", "none")
_OWNERS = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp", "sleuth": "vllm"}


def constraint_fields(constraint: Constraint, dialect: str) -> dict[str, Any] | str:
    """Request fields that carry ``constraint`` to a server of ``dialect``, or why it cannot.

    vLLM (>= 0.10) and Sleuth's serve-llm: ``structured_outputs``; older vLLM: ``guided_*``;
    SGLang: ``regex`` / ``response_format``; llama.cpp server: ``grammar`` (GBNF) /
    ``json_schema``; OpenAI and OpenVINO Model Server: ``response_format`` (JSON only).
    """
    schema_format = {
        "type": "json_schema",
        "json_schema": {"name": "action", "schema": constraint.schema, "strict": True},
    }
    if dialect == "vllm":
        key = "regex" if constraint.kind == "regex" else "json"
        value = constraint.pattern if constraint.kind == "regex" else constraint.schema
        return {"structured_outputs": {key: value}}
    if dialect == "vllm-legacy":
        if constraint.kind == "regex":
            return {"guided_regex": constraint.pattern}
        return {"guided_json": constraint.schema}
    if dialect == "sglang":
        if constraint.kind == "regex":
            return {"regex": constraint.pattern}
        return {"response_format": schema_format}
    if dialect == "llamacpp":
        if constraint.kind == "regex":
            if not constraint.gbnf:
                return "unsupported: llama.cpp takes GBNF grammars and this constraint has none"
            return {"grammar": constraint.gbnf}
        return {"json_schema": constraint.schema}
    if dialect == "openai":
        if constraint.kind == "regex":
            return "unsupported: the OpenAI API has no regex constraint (use --format json)"
        return {"response_format": schema_format}
    return "unsupported: constraints disabled for this server (--constrain-via none)"


class OpenAIChatLLM:
    """Async client with timeouts and bounded retries (exponential backoff, jitter, Retry-After)."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        constrain_via: str = "auto",
    ) -> None:
        if constrain_via not in DIALECTS:
            raise LLMError(f"constrain_via must be one of {', '.join(DIALECTS)}")
        self.constrain_via = constrain_via
        self._refused: str = ""  # the server's answer when it rejected the constraint fields
        self.base_url = base_url.rstrip("/")
        self.name = model or "default"
        key = api_key or os.environ.get("SLEUTH_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_retries, self._backoff = max_retries, backoff_s

    def _payload(
        self, messages: list[Message], config: GenerationConfig, tools: list[dict] | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.stop:
            payload["stop"] = list(config.stop)[:4]  # OpenAI accepts at most four
        if config.seed is not None:
            payload["seed"] = config.seed
        if tools:
            payload["tools"] = tools
        return payload

    async def _dialect(self) -> str:
        """``constrain_via``, or for "auto" the server's kind read from ``/models``' owner."""
        if self.constrain_via != "auto":
            return self.constrain_via
        try:
            response = await self._session().get(f"{self.base_url}/models")
            owners = {m.get("owned_by", "") for m in response.json().get("data", [])}
        except (httpx.HTTPError, ValueError, AttributeError):
            owners = set()
        found = next((_OWNERS[o] for o in owners if o in _OWNERS), "vllm")
        self.constrain_via = found
        return found

    async def _constrained_post(
        self, payload: dict[str, Any], constraint: Constraint | None
    ) -> tuple[dict[str, Any], str]:
        """Post with the constraint fields; a server that refuses them gets a recorded fallback."""
        if constraint is None:
            return await self._post(payload), ""
        if self._refused:
            return await self._post(payload), f"fallback: {self._refused}"
        fields = constraint_fields(constraint, await self._dialect())
        if isinstance(fields, str):
            return await self._post(payload), fields
        try:
            return await self._post({**payload, **fields}), constraint.describe()
        except LLMError as exc:
            if not 400 <= exc.status < 500 or exc.status in (401, 403, 404):
                raise
            self._refused = f"the server refused {', '.join(fields)} ({str(exc)[:200]})"
            return await self._post(payload), f"fallback: {self._refused}"

    def _session(self) -> httpx.AsyncClient:
        """One pooled client per event loop (a client cannot outlive the loop it was made in)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
            self._loop = loop
        return self._client

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        client = self._session()
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = await client.post(url, json=payload)
            except httpx.TimeoutException:
                if last:
                    raise LLMError(f"{url} timed out {attempt + 1} times") from None
                delay = None
            except httpx.TransportError as exc:
                if last:
                    raise LLMError(f"cannot reach the LLM at {url}: {exc}") from None
                delay = None
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise LLMError(
                            f"{url} answered 200 with non-JSON: {response.text[:200]!r}"
                        ) from None
                if response.status_code not in RETRY_STATUSES or last:
                    error = LLMError(_explain(url, response))
                    error.status = response.status_code
                    raise error
                delay = _retry_after(response)
            await asyncio.sleep(
                delay if delay is not None else self._backoff * 2**attempt * (0.5 + random.random())
            )
        raise AssertionError("unreachable")

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion:
        config = config or GenerationConfig()
        started = time.perf_counter()
        data, constraint_note = await self._constrained_post(
            self._payload(messages, config, tools), config.constraint
        )
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"unexpected answer from {self.base_url}: {str(data)[:200]}") from None
        text = message.get("content") or ""
        calls = [_tool_call(raw) for raw in message.get("tool_calls") or []]
        usage = data.get("usage") or {}
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        return Completion(
            text=text,
            tool_calls=calls,
            usage=Usage(
                prompt_tokens=prompt
                if prompt is not None
                else sum(approx_tokens(str(m.get("content") or "")) for m in messages),
                completion_tokens=completion if completion is not None else approx_tokens(text),
            ),
            latency_s=time.perf_counter() - started,
            finish_reason=choice.get("finish_reason") or "stop",
            model=data.get("model", self.name),
            constraint=constraint_note,
        )

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = raw.get("function", {})
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            # Kept, not raised: the agent turns it into a corrective observation.
            arguments = {"_invalid_json": arguments, "_error": exc.msg}
    return ToolCall(id=raw.get("id", ""), name=function.get("name", ""), arguments=arguments)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def _explain(url: str, response: httpx.Response) -> str:
    hint = {
        401: "check the API key (SLEUTH_LLM_API_KEY or OPENAI_API_KEY)",
        403: "check the API key and its permissions",
        404: "is this an OpenAI-compatible base URL ending in /v1, and is the model name right?",
    }.get(response.status_code, "")
    body = response.text[:300]
    return f"{url} answered {response.status_code}: {body}" + (f" ({hint})" if hint else "")


def served_model(base_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> str:
    """The id of the one model the server at ``base_url`` lists at ``/models``: what a run
    records and asks for when no ``--model`` is given. A server listing several (or none), or
    not answering, is an ``LLMError`` asking for ``--model``: a run must never be recorded under
    a name the server did not serve."""
    from sleuth.display import one_line

    url = base_url.rstrip("/")
    key = api_key or os.environ.get("SLEUTH_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(f"{url}/models", headers=headers, timeout=timeout)
        response.raise_for_status()
        listed = response.json().get("data")
        ids = [str(m["id"]) for m in listed]
    except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError) as exc:
        reason = one_line(exc, 200) or type(exc).__name__
        raise LLMError(
            f"cannot ask the LLM server at {url} which model it serves (GET {url}/models: "
            f"{reason}); name the model with --model"
        ) from None
    if len(ids) != 1:
        shown = ", ".join(one_line(i, 80) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        what = f"{len(ids)} models ({shown})" if ids else "no model"
        raise LLMError(f"the LLM server at {url} serves {what}; choose one with --model")
    return ids[0]
