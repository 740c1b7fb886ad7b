"""Bounds on the work one request may cost: hits, response bytes and search time.

Without them a single ``/search/batch`` of 512 queries x k=1000 (under the 1 MB body limit)
produced a 66 MB response and two minutes of server CPU. Each refusal is a 413 naming the limit,
its value and the ``sleuth serve`` flag that sets it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sleuth.errors import SleuthError
from sleuth.types import Hit

DEFAULT_MAX_BATCH_HITS = 20_000
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT_S = 30.0
CHUNK_QUERIES = 32  # the deadline is checked between chunks of this many queries


class RequestTooCostly(SleuthError):
    """The request would exceed one of the server's per-request limits (answered with 413)."""


@dataclass(frozen=True)
class ServerLimits:
    max_batch_hits: int = DEFAULT_MAX_BATCH_HITS
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S

    def __post_init__(self) -> None:
        for name in ("max_batch_hits", "max_response_bytes", "request_timeout_s"):
            if not getattr(self, name) > 0:
                flag = "--" + name.removesuffix("_s").replace("_", "-")
                raise SleuthError(f"{flag} must be positive, got {getattr(self, name)}")

    def public(self) -> dict[str, float]:
        """The limits as /health reports them."""
        return {
            "max_batch_hits": self.max_batch_hits,
            "max_response_bytes": self.max_response_bytes,
            "request_timeout_s": self.request_timeout_s,
        }

    def check_hits(self, queries: int, k: int) -> None:
        if queries * k > self.max_batch_hits:
            raise RequestTooCostly(
                f"{queries} queries x k={k} asks for {queries * k:,} hits; this server answers at "
                f"most {self.max_batch_hits:,} hits per request (--max-batch-hits): send fewer "
                "queries per request or a smaller k"
            )

    def check_response_bytes(self, size: int) -> None:
        if size > self.max_response_bytes:
            raise RequestTooCostly(
                f"the response would be {size:,} bytes; this server sends at most "
                f"{self.max_response_bytes:,} bytes per response (--max-response-bytes): send "
                "fewer queries per request or a smaller k"
            )

    def timed_out(self, elapsed_s: float) -> RequestTooCostly:
        return RequestTooCostly(
            f"the request took over {self.request_timeout_s:g} s of search ({elapsed_s:.1f} s "
            "when stopped); this server stops at --request-timeout: send fewer queries per "
            "request or a smaller k"
        )


def run_bounded(
    search_batch: Callable[[Sequence[str], int], list[list[Hit]]],
    queries: list[str],
    k: int,
    limits: ServerLimits,
) -> list[list[Hit]]:
    """``search_batch(queries, k)`` in chunks, refusing too many hits up front and stopping
    between chunks once the time limit has passed (a running engine call cannot be cancelled,
    so the overrun is at most one chunk)."""
    limits.check_hits(len(queries), k)
    started = time.monotonic()
    results: list[list[Hit]] = []
    for start in range(0, len(queries), CHUNK_QUERIES):
        elapsed = time.monotonic() - started
        if results and elapsed > limits.request_timeout_s:
            raise limits.timed_out(elapsed)
        results.extend(search_batch(queries[start : start + CHUNK_QUERIES], k))
    return results
