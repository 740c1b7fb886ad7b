"""In-process chat model on transformers: the packaged SmolLM2 by default, or any HF id / folder /
GGUF file. Generation blocks, so it runs in a worker thread behind a lock (one model instance)
and the event loop stays free for other episodes' searches. A cancelled caller (a client gone
from ``serve-llm``) sets an event that a stopping criterion reads at every token, so the
thread stops decoding, and a request still waiting for the lock never starts."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from sleuth.errors import LLMError
from sleuth.llm.base import Completion, GenerationConfig, Message, Usage
from sleuth.llm.toolcalls import parse_tool_calls


def render_for_template(messages: list[Message]) -> list[Message]:
    """Plain-text chat templates know nothing of tool calls: write them into the content."""
    rendered = []
    for message in messages:
        content = message.get("content") or ""
        for call in message.get("tool_calls") or []:
            function = call.get("function", call)
            arguments = function.get("arguments", {})
            if isinstance(arguments, str):
                arguments = json.loads(arguments) if arguments.strip().startswith("{") else {}
            payload = {"name": function.get("name"), "arguments": arguments}
            content += f"<tool_call>{json.dumps(payload)}</tool_call>"
        rendered.append({"role": message["role"], "content": content})
    return rendered


def completion_from_ids(
    tokenizer: Any,
    new_ids: list[int],
    prompt_tokens: int,
    finish: str,
    config: GenerationConfig,
    tools: list[dict] | None,
    started: float,
    model: str,
) -> Completion:
    """New token ids as a ``Completion``: stop strings cut (OpenAI semantics), tool calls read,
    the constraint that was enforced named. Shared by the in-process backends."""
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    for stop in config.stop:
        if stop in text:
            text, finish = text[: text.index(stop)], "stop"
    calls = parse_tool_calls(text, {t["function"]["name"] for t in tools}) if tools else []
    return Completion(
        text=text,
        tool_calls=calls,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(new_ids)),
        latency_s=time.perf_counter() - started,
        finish_reason="tool_calls" if calls else finish,
        model=model,
        constraint=config.constraint.describe() if config.constraint else "",
    )


class TransformersLLM:
    """The fallback and training backend: plain transformers, one request at a time."""

    supports_constraint = True

    def __init__(self, model: str | Path | None = None, *, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sleuth.llm.models import resolve_hf_folder
        from sleuth.llm.quiet import no_progress_bars

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(threads or os.cpu_count() or 1)
        folder, self.name = resolve_hf_folder(model)
        try:
            with no_progress_bars():  # "Loading weights" bars would flood logs and terminals
                self.tokenizer = AutoTokenizer.from_pretrained(folder)
                self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        except OSError as exc:
            raise LLMError(f"cannot load model {self.name!r}: {exc}") from None
        self._lock = threading.Lock()
        self._torch = torch
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 8192))

    def count_tokens(self, messages: list[Message]) -> int:
        text = self.tokenizer.apply_chat_template(
            render_for_template(messages), add_generation_prompt=True, tokenize=False
        )
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generate(
        self,
        messages: list[Message],
        config: GenerationConfig,
        tools: list[dict] | None,
        gone: threading.Event | None = None,
    ) -> Completion:
        torch, tokenizer = self._torch, self.tokenizer
        started = time.perf_counter()
        rendered = render_for_template(messages)
        try:
            encoded = tokenizer.apply_chat_template(
                rendered,
                tools=tools,
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
        except Exception:  # templates without tool support reject the argument
            encoded = tokenizer.apply_chat_template(
                rendered, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        prompt_len = encoded["input_ids"].shape[1]
        sampling = config.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_tokens,
            "do_sample": sampling,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if sampling:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=tokenizer)
        from sleuth.llm.grammar_mask import grammar_generate_kwargs

        kwargs.update(
            grammar_generate_kwargs(self.model, tokenizer, config.constraint, 1, prompt_len)
        )
        gone = gone or threading.Event()
        kwargs["stopping_criteria"] = _stop_when(gone)
        with self._lock, torch.no_grad():
            if gone.is_set():
                raise LLMError("the caller went away")
            if config.seed is not None:
                torch.manual_seed(config.seed)
            output = self.model.generate(**encoded, **kwargs)
        new_tokens = output[0, prompt_len:].tolist()
        finish = "length" if len(new_tokens) >= config.max_tokens else "stop"
        return completion_from_ids(
            tokenizer, new_tokens, int(prompt_len), finish, config, tools, started, self.name
        )

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion:
        gone = threading.Event()
        try:
            return await asyncio.to_thread(
                self._generate, messages, config or GenerationConfig(), tools, gone
            )
        except asyncio.CancelledError:
            gone.set()  # the thread stops at its next token (or before it starts)
            raise

    async def aclose(self) -> None:
        return None


def _stop_when(gone: threading.Event) -> Any:
    """A stopping criterion that ends generation once ``gone`` is set."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Gone(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full((input_ids.shape[0],), gone.is_set(), dtype=torch.bool)

    return StoppingCriteriaList([_Gone()])
