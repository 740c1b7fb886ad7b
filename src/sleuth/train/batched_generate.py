"""Batched generation on the policy being trained: a GRPO group's episodes decode together.

Each episode's ``PolicyLLM`` calls the generator from its own worker thread with its exact token
stream. A single batching thread collects the requests that arrive within a short window (the
other episodes are usually a BM25 search, well under a millisecond, away from their next turn),
groups those with the same decoding settings, and runs one left-padded ``model.generate`` per
group. Per-sequence stops: a row's output is cut at its own end-of-sequence token or stop
string; the action grammar, when asked for, masks each row with its own matcher.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sleuth.llm.base import GenerationConfig


@dataclass
class _Request:
    ids: list[int]
    config: GenerationConfig
    future: Future = field(default_factory=Future)


def _settings_key(config: GenerationConfig) -> tuple:
    constraint = config.constraint
    grammar = (constraint.kind, constraint.pattern, constraint.schema_json) if constraint else None
    return (
        config.max_tokens,
        config.temperature,
        config.top_p,
        tuple(config.stop),
        config.seed,
        grammar,
    )


class BatchedGenerator:
    """``Generate`` (ids, config) -> new ids, batching concurrent callers into one ``generate``."""

    supports_constraint = True

    def __init__(
        self, model: Any, tokenizer: Any, max_batch: int = 16, window_s: float = 0.05
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.window_s = max_batch, window_s
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self.batch_sizes: list[int] = []  # sizes of the batches run, for logs and tests
        self._thread = threading.Thread(target=self._run, name="rollout-batcher", daemon=True)
        self._thread.start()

    def __call__(self, ids: list[int], config: GenerationConfig) -> list[int]:
        request = _Request(list(ids), config)
        with self._cond:
            self._pending.append(request)
            self._cond.notify_all()
        return request.future.result()

    def _take_batch(self) -> list[_Request]:
        with self._cond:
            while not self._pending:
                self._cond.wait()
            deadline = time.monotonic() + self.window_s
            while len(self._pending) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            return taken

    def _run(self) -> None:
        while True:
            requests = self._take_batch()
            groups: dict[tuple, list[_Request]] = defaultdict(list)
            for request in requests:
                groups[_settings_key(request.config)].append(request)
            for group in groups.values():
                try:
                    outputs = self._generate([r.ids for r in group], group[0].config)
                except Exception as exc:  # every caller learns why, none hangs
                    for request in group:
                        request.future.set_exception(exc)
                    continue
                for request, output in zip(group, outputs, strict=True):
                    request.future.set_result(output)

    def _generate(self, batch: list[list[int]], config: GenerationConfig) -> list[list[int]]:
        import torch

        tokenizer = self.tokenizer
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # left padding: every row's next token is column `width`
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_tokens,
            "do_sample": config.temperature > 0,
            "pad_token_id": pad,
        }
        if config.temperature > 0:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=0)
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=tokenizer)
        from sleuth.llm.grammar_mask import grammar_generate_kwargs

        kwargs.update(
            grammar_generate_kwargs(self.model, tokenizer, config.constraint, len(batch), width)
        )
        with torch.no_grad():
            was_training = self.model.training
            self.model.eval()
            try:
                if config.seed is not None:
                    torch.manual_seed(config.seed)
                output = self.model.generate(
                    input_ids=input_ids, attention_mask=attention, **kwargs
                )
            finally:
                self.model.train(was_training)
        self.batch_sizes.append(len(batch))
        return [self._trim(row[width:].tolist(), config) for row in output]

    def _trim(self, new_ids: list[int], config: GenerationConfig) -> list[int]:
        """A row's own tokens: through its first stop string, else up to and including its EOS.

        Rows that finished early are padded (with EOS when pad = EOS), so a stop string that
        comes before the first EOS ends the row there, as it would have alone.
        """
        eos = self.tokenizer.eos_token_id
        end = new_ids.index(eos) + 1 if eos is not None and eos in new_ids else len(new_ids)
        own = new_ids[:end]
        decode = self.tokenizer.decode
        if config.stop and any(s in decode(own, skip_special_tokens=True) for s in config.stop):
            for cut in range(1, len(own) + 1):  # the shortest prefix that holds a stop string
                if any(s in decode(own[:cut], skip_special_tokens=True) for s in config.stop):
                    return own[:cut]
        return own
