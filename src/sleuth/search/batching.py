"""Merge concurrent encode calls into one forward pass (a leader-based micro-batcher).

A server answers many small requests on many threads. Encoding each on its own wastes the
CPU twice: tiny batches use the matrix kernels badly, and several runtimes each spinning up
all cores at once fight over them. Here the first caller becomes the leader and encodes its
texts; callers arriving meanwhile queue up, and the next leader takes the whole queue as one
batch. No background thread, no timer: a lone caller pays no extra latency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

EncodeFn = Callable[[Sequence[str]], np.ndarray]


class _Job:
    __slots__ = ("done", "error", "result", "texts")

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.done = False
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class MicroBatcher:
    """``batcher(texts)`` returns ``encode(texts)``, merged with whatever else is waiting."""

    def __init__(self, encode: EncodeFn, max_texts: int = 1024) -> None:
        self._encode = encode
        self._max_texts = max_texts
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False
        self.passes = 0  # forward passes run: fewer than calls when batching happened

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        job = _Job(texts)
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while self._busy and not job.done:
                    self._cond.wait()
                if job.done:
                    break
                self._busy = True
                batch = self._take()
            self._run(batch)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _take(self) -> list[_Job]:
        """Queued jobs in arrival order, at least one, up to ``max_texts`` texts."""
        batch, total = [], 0
        while self._queue and (not batch or total + len(self._queue[0].texts) <= self._max_texts):
            job = self._queue.pop(0)
            batch.append(job)
            total += len(job.texts)
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            texts = [text for job in batch for text in job.texts]
            vectors = self._encode(texts)
            start = 0
            for job in batch:
                job.result = vectors[start : start + len(job.texts)]
                start += len(job.texts)
        except BaseException as exc:  # every waiter gets the error, none hangs
            for job in batch:
                job.error = exc
        finally:
            with self._cond:
                self.passes += 1
                for job in batch:
                    job.done = True
                self._busy = False
                self._cond.notify_all()
