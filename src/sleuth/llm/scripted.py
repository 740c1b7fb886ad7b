"""A zero-latency LLM that replays given outputs: for tests and the framework-overhead benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from sleuth.errors import LLMError
from sleuth.llm.base import Completion, GenerationConfig, Message, Usage

Policy = Callable[[list[Message]], "str | Completion"]


def approx_tokens(text: str) -> int:
    """~4 characters a token: good enough for budgets in tests."""
    return max(1, len(text) // 4) if text else 0


class ScriptedLLM:
    """Replays ``outputs`` in order (a list), or asks ``outputs(messages)`` (a policy function).

    Stop strings are honoured like a real backend: text is cut at the first stop string.
    """

    def __init__(self, outputs: Sequence[str | Completion] | Policy, name: str = "scripted"):
        self._outputs = outputs if callable(outputs) else list(outputs)
        self._cursor = 0
        self.name = name
        self.calls: list[list[Message]] = []
        self.configs: list[GenerationConfig | None] = []  # each call's decoding settings

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion:
        await asyncio.sleep(0)  # a real await point, like any backend
        self.calls.append(list(messages))
        self.configs.append(config)
        if callable(self._outputs):
            output = self._outputs(list(messages))
        else:
            if self._cursor >= len(self._outputs):
                raise LLMError(f"scripted LLM ran out of outputs after {self._cursor} calls")
            output = self._outputs[self._cursor]
            self._cursor += 1
        if isinstance(output, Completion):
            return output
        text, finish = output, "stop"
        for stop in config.stop if config else []:
            if stop in text:
                text = text[: text.index(stop)]  # OpenAI semantics: the stop string is cut
        prompt = sum(approx_tokens(str(m.get("content") or "")) for m in messages)
        return Completion(
            text=text,
            usage=Usage(prompt_tokens=prompt, completion_tokens=approx_tokens(text)),
            finish_reason=finish,
            model=self.name,
        )

    async def aclose(self) -> None:
        return None
