"""The default local backend: OpenVINO GenAI's ContinuousBatchingPipeline on the CPU.

Why: measured on 2 cores it decodes SmolLM2-135M several times faster than transformers (fp16
weights by default, int8 on request), and, unlike every other CPU engine that installs as a
wheel, it batches requests continuously: many coroutines calling ``complete`` at once share
every decoding step. One worker thread owns the pipeline: it admits queued requests with
``add_request`` and calls ``step()`` while anything is running; callers wait on futures.
Prefix caching reuses the KV cache of a conversation's earlier turns. A caller that goes away
(its task cancelled: a client that disconnected from ``serve-llm``) abandons its request: the
worker stops it in the engine at the next step instead of decoding for no one.

Structured output (regex / JSON schema, compiled by the engine's grammar backend) enforces the
agent's action grammar; the model's chat template is applied with its Hugging Face tokenizer
so prompts are token-for-token those of the transformers backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import LLMError
from sleuth.llm.base import Completion, GenerationConfig, Message
from sleuth.llm.constraint import Constraint, check_constraint
from sleuth.llm.transformers_local import completion_from_ids, render_for_template

# Tokens at the end of a generation decoded to look for a stop string.
STOP_TAIL_TOKENS = 24


class _Deliveries:
    """Token ids handed from the worker thread to one streaming coroutine, then ``None``.

    An asyncio queue fed with ``call_soon_threadsafe``: a waiting stream holds no thread (a
    blocking ``get`` in ``asyncio.to_thread`` took one of the few default executor threads per
    stream, and an abandoned stream kept it until the engine ended its request)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[list[int] | None] = asyncio.Queue()

    def put(self, item: list[int] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody listens
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def get(self) -> list[int] | None:
        return await self._queue.get()


@dataclass
class _Request:
    ids: list[int]
    config: Any  # openvino_genai.GenerationConfig
    future: Future
    stream: _Deliveries | None = None  # token ids as they are generated, then None
    handle: Any = None
    sent: int = 0
    stops: tuple[str, ...] = ()
    generated: list[int] = field(default_factory=list)
    length: bool = False  # the engine ended it at max_new_tokens
    stopped: bool = False  # a stop string was matched here and the request stopped
    started: float = field(default_factory=time.perf_counter)
    abandoned: bool = False  # the caller went away: stop decoding, resolve nothing


def _resolve(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Set a request's outcome unless its caller already cancelled the future: setting it then
    raises ``InvalidStateError``, which killed the worker thread (and every later request)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled between the check and the set
        pass


class OpenVINOLLM:
    """Any model Sleuth can resolve (packaged, GGUF, HF folder/id), run by OpenVINO GenAI."""

    supports_constraint = True

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threads: int | None = None,
        weight_format: str = "fp16",
        kv_cache_gb: float = 1.0,
        max_num_seqs: int = 32,
    ) -> None:
        try:
            import openvino as ov
            import openvino_genai as ov_genai
        except ImportError:
            raise LLMError(
                "the OpenVINO backend needs openvino-genai: pip install 'sleuth[llm]' "
                "(or choose --backend transformers)"
            ) from None
        from transformers import AutoTokenizer

        from sleuth.llm.models import resolve_hf_folder
        from sleuth.llm.openvino_export import openvino_model_dir

        source, self.name = resolve_hf_folder(model)
        folder = Path(model) if model and _is_openvino_folder(Path(str(model))) else None
        folder = folder or openvino_model_dir(source, self.name, weight_format)
        self.folder = folder
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except OSError as exc:
            raise LLMError(f"cannot load the tokenizer of {self.name!r}: {exc}") from None
        scheduler = ov_genai.SchedulerConfig()
        scheduler.cache_size = max(1, int(kv_cache_gb))
        scheduler.max_num_seqs = max_num_seqs
        self._max_running = max(1, max_num_seqs)
        scheduler.enable_prefix_caching = True
        properties = {"INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1}
        try:
            self._pipe = ov_genai.ContinuousBatchingPipeline(
                str(folder), scheduler, "CPU", properties
            )
        except RuntimeError as exc:
            raise LLMError(f"OpenVINO cannot load {folder}: {str(exc)[:300]}") from None
        self.context_length = _context_length(folder, self.tokenizer)
        self._ov, self._genai = ov, ov_genai
        self._ids = itertools.count()
        self._inbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self.peak_batch = 0  # most requests decoded together so far (batching is observable)
        # Counters for ``stats()`` (serve-llm's /health): written by the worker thread only.
        self.running = 0  # requests in the engine now
        self.generated_tokens = 0  # tokens read from the engine since start
        self.abandoned = 0  # requests stopped because their caller went away
        self._worker = threading.Thread(target=self._run, name="openvino-batcher", daemon=True)
        self._worker.start()

    # -- the worker thread --------------------------------------------------------------------
    def _admit(self, request: _Request) -> bool:
        import numpy as np

        if request.abandoned:  # its caller left while it waited in the inbox
            self._count_abandoned(request)
            return False

        tensor = self._ov.Tensor(np.asarray([request.ids], dtype=np.int64))
        try:
            request.handle = self._pipe.add_request(next(self._ids), tensor, request.config)
        except Exception as exc:  # a bad request must not kill the worker
            _resolve(request.future, error=LLMError(f"OpenVINO rejected the request: {exc}"))
            if request.stream is not None:
                request.stream.put(None)
            return False
        return True

    def _run(self) -> None:
        """Admit up to ``max_num_seqs`` requests into the engine; later ones wait in the inbox.

        Why: with 150 requests handed over at once (query generation for retriever training)
        the engine stalled; admitting no more than it schedules keeps the KV cache for the
        requests being decoded and lets the rest wait their turn in order.
        """
        running: list[_Request] = []
        while True:
            block = not running
            try:
                while len(running) < self._max_running:
                    item = self._inbox.get(block=block)
                    block = False
                    if item is None:
                        self._fail_all(running + self._drain_inbox(), "the model was closed")
                        return
                    if self._admit(item):
                        running.append(item)
                        self.peak_batch = max(self.peak_batch, len(running))
            except queue.Empty:
                pass
            try:
                self._pipe.step()
            except Exception as exc:
                self._fail_all(running, f"generation failed: {exc}")
                running = []
                continue
            running = [r for r in running if not self._progress(r)]
            self.running = len(running)
            if not running:
                self._free_stopped()

    def _progress(self, request: _Request) -> bool:
        """Collect new tokens (forwarding them when streaming), stop at a stop string, resolve
        finished requests. True when done."""
        if request.abandoned:
            request.handle.stop()  # the engine frees the sequence at its next step
            self._count_abandoned(request)
            return True
        status = request.handle.get_status()
        finished = status != self._genai.GenerationStatus.RUNNING
        if request.handle.can_read():
            for output in request.handle.read().values():
                new_ids = list(output.generated_ids)
                request.generated += new_ids
                self.generated_tokens += len(new_ids)
                if request.stream is not None and new_ids:
                    request.stream.put(new_ids)
                if output.finish_reason == self._genai.GenerationFinishReason.LENGTH:
                    request.length = True
        if not finished and request.stops and self._stop_string_reached(request):
            request.handle.stop()  # the engine frees the sequence at its next step
            request.stopped = finished = True
        if not finished:
            return False
        if request.stream is not None:
            request.stream.put(None)
            _resolve(request.future)
            return True
        failed = (self._genai.GenerationStatus.CANCEL, self._genai.GenerationStatus.IGNORED)
        if status in failed and not request.generated:
            _resolve(request.future, error=LLMError(f"generation ended with status {status}"))
            return True
        reason = "length" if request.length and not request.stopped else "stop"
        _resolve(request.future, (request.generated, reason))
        return True

    def _count_abandoned(self, request: _Request) -> None:
        self.abandoned += 1
        _resolve(request.future, error=LLMError("the caller went away"))
        if request.stream is not None:
            request.stream.put(None)

    def _free_stopped(self) -> None:
        """One more engine step once nothing else runs: a sequence stopped at a stop string is
        freed only by the next ``step()``, and with none to come its KV blocks stayed taken
        (OpenVINO logged "BlockManager leaked sequence block tables" when the model closed)."""
        try:
            if self._pipe.has_non_finished_requests():
                self._pipe.step()
        except Exception:  # nothing waits on a stopped sequence; the next request will tell
            pass

    def _stop_string_reached(self, request: _Request) -> bool:
        """Stop strings are matched here, not by the engine: OpenVINO GenAI 2026.4's own
        matching (its detokenizer inside the sampler's thread pool) deadlocked a 200-question
        evaluation mid-run, with every thread waiting. The tail is enough: a stop string is
        a few tokens long."""
        tail = self.tokenizer.decode(
            request.generated[-STOP_TAIL_TOKENS:], skip_special_tokens=True
        )
        return any(stop in tail for stop in request.stops)

    def _drain_inbox(self) -> list[_Request]:
        waiting = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return waiting
            if item is not None:
                waiting.append(item)

    @staticmethod
    def _fail_all(requests: list[_Request], message: str) -> None:
        for request in requests:
            _resolve(request.future, error=LLMError(message))
            if request.stream is not None:
                request.stream.put(None)

    # -- requests -----------------------------------------------------------------------------
    def encode_chat(self, messages: list[Message], tools: list[dict] | None = None) -> list[int]:
        rendered = render_for_template(messages)
        try:
            text = self.tokenizer.apply_chat_template(
                rendered, tools=tools, add_generation_prompt=True, tokenize=False
            )
        except Exception:  # templates without tool support reject the argument
            text = self.tokenizer.apply_chat_template(
                rendered, add_generation_prompt=True, tokenize=False
            )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generation_config(self, config: GenerationConfig) -> Any:
        genai = self._genai
        ov_config = genai.GenerationConfig()
        ov_config.max_new_tokens = config.max_tokens
        if config.temperature > 0:
            ov_config.do_sample = True
            ov_config.temperature = config.temperature
            ov_config.top_p = config.top_p
        else:
            ov_config.do_sample = False
        if config.seed is not None:
            ov_config.rng_seed = config.seed
        # Stop strings are matched by the worker (``_stop_string_reached``), not the engine,
        # and cut exactly before the stop string by ``completion_from_ids`` (OpenAI semantics).
        if config.constraint is not None:
            ov_config.structured_output_config = _structured(genai, config.constraint)
        eos = self.tokenizer.eos_token_id
        if eos is not None:
            ov_config.set_eos_token_id(int(eos))
        return ov_config

    def _submit(self, ids: list[int], config: GenerationConfig, stream: bool = False) -> _Request:
        if self._closed:
            raise LLMError("the model was closed")
        if len(ids) + config.max_tokens > self.context_length:
            raise LLMError(
                f"prompt ({len(ids)} tokens) + max_tokens ({config.max_tokens}) exceeds the "
                f"model's context of {self.context_length} tokens"
            )
        if config.constraint is not None:
            check_constraint(config.constraint)  # a bad grammar must fail alone, not the batch
        request = _Request(
            ids,
            self._generation_config(config),
            Future(),
            _Deliveries() if stream else None,
            stops=tuple(config.stop),
        )
        self._inbox.put(request)
        return request

    @staticmethod
    def _abandon(request: _Request) -> None:
        """The caller is gone: the worker stops the request at its next step (or skips it when
        it is still waiting for admission); one already finished is no longer looked at."""
        request.abandoned = True

    def stats(self) -> dict[str, int]:
        """What the engine is doing, for serve-llm's /health: requests decoding now, tokens
        generated and requests abandoned by their callers since start."""
        return {
            "running": self.running,
            "generated_tokens": self.generated_tokens,
            "abandoned": self.abandoned,
            "peak_batch": self.peak_batch,
        }

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion:
        config = config or GenerationConfig()
        started = time.perf_counter()
        ids = self.encode_chat(messages, tools)
        request = self._submit(ids, config)
        try:
            new_ids, reason = await asyncio.wrap_future(request.future)
        except asyncio.CancelledError:
            self._abandon(request)
            raise
        return completion_from_ids(
            self.tokenizer, new_ids, len(ids), reason, config, tools, started, self.name
        )

    async def stream(
        self, messages: list[Message], config: GenerationConfig | None = None
    ) -> AsyncIterator[str]:
        """Text deltas as tokens arrive (stop strings are cut from the end by the engine)."""
        config = config or GenerationConfig()
        request = self._submit(self.encode_chat(messages), config, stream=True)
        try:
            async for piece in self._stream_text(request, config.stop):
                yield piece
            await asyncio.wrap_future(request.future)
        finally:  # cancelled, or the consumer closed the generator early: stop decoding
            if not request.future.done():
                self._abandon(request)

    async def _stream_text(self, request: _Request, stops: list[str]) -> AsyncIterator[str]:
        assert request.stream is not None
        generated: list[int] = []
        emitted, stopped = "", False
        while True:
            chunk = await request.stream.get()
            if chunk is None:
                break
            if stopped:
                continue  # drain until the engine ends the request
            generated += chunk
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # half of a multi-byte character
            ready, stopped = _before_stop(text, stops)
            if len(ready) > len(emitted):
                yield ready[len(emitted) :]
                emitted = ready
        if not stopped:  # what was held back as a possible stop-string start
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            if len(text) > len(emitted):
                yield text[len(emitted) :]

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.encode_chat(messages))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.put(None)
            await asyncio.to_thread(self._worker.join, 10)


def _before_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text safe to stream: cut at a stop string, holding back a suffix that may start one."""
    cut = min((text.index(s) for s in stops if s in text), default=-1)
    if cut >= 0:
        return text[:cut], True
    hold = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[: len(text) - hold], False


def _structured(genai: Any, constraint: Constraint) -> Any:
    structured = genai.StructuredOutputConfig()
    if constraint.kind == "regex":
        structured.regex = constraint.pattern
    else:
        structured.json_schema = constraint.schema_json
    return structured


def _is_openvino_folder(path: Path) -> bool:
    return (path / "openvino_model.xml").is_file()


def _context_length(folder: Path, tokenizer: Any) -> int:
    """The model's context window: config's max_position_embeddings, else the tokenizer's."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
        return int(config["max_position_embeddings"])
    except (OSError, KeyError, ValueError, TypeError):
        limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
        return limit if 0 < limit < 1_000_000 else 8192
