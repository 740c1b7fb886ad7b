"""The ``LLM`` protocol: chat messages in, text and/or tool calls out, usage and timing reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sleuth.llm.constraint import Constraint

Message = dict[str, Any]  # OpenAI chat format: {"role": ..., "content": ..., "tool_calls": ...}


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class GenerationConfig:
    """Decoding settings; ``temperature == 0`` means greedy."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    # The grammar the output must match (the agent's action grammar); backends that can
    # enforce it do, the others say so in ``Completion.constraint``.
    constraint: Constraint | None = None


@dataclass(slots=True)
class Completion:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: str = "stop"  # "stop" | "length" | "tool_calls"
    model: str = ""
    # How the constraint was handled: "" (none asked), "regex"/"json_schema" (enforced),
    # "fallback: ..." (the server refused it; generated unconstrained), "unsupported: ...".
    constraint: str = ""


@runtime_checkable
class LLM(Protocol):
    """Any chat model. Implementations must be safe to call from many coroutines at once."""

    name: str

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...
