"""Sleuth's search tool for verl >= 0.8 and main, as one self-contained file (stdlib only).

verl 0.8 removed its built-in ``verl.tools.search_tool.SearchTool`` (main has none either);
stateless tools are plain functions loaded with
``actor_rollout_ref.rollout.multi_turn.function_tool_path=<this file>`` (verl's
``load_all_tools``, in every agent-loop worker and in the dataset's prompt-length filter).
``sleuth export verl`` copies this file as ``sleuth_search_tool.py`` with the retrieval URLs
and topk filled in (several URLs: one server per node, balanced with failover). It keeps the
old tool's contract so the same data and prompt train on either verl: the tool is called
``search``, takes ``query_list``, sends Search-R1's ``POST /retrieve`` body (``queries``,
``topk``, ``return_scores``) and answers with the same
``{"result": "Doc 1 (Title: ...)..."}`` text.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

try:
    from verl.tools.function_tool import function_tool
except ImportError:  # outside verl (tests, a quick manual check) the file still imports

    def function_tool(name: Any = None, *, schema: Any = None) -> Any:
        if callable(name):
            return name
        return lambda fn: fn


# -- settings (rewritten by `sleuth export verl`) ---------------------------------------------
RETRIEVAL_URLS = ["http://127.0.0.1:8000/retrieve"]  # several: balanced, with failover
TOPK = 3
TIMEOUT_S = 30.0
RETRIES = 5  # rounds over the servers; connection errors and 5xx are retried, 4xx are not
PAUSE_S = 1.0  # pause after the n-th round in which every server failed: n * PAUSE_S
COOLDOWN_S = 10.0  # a server that failed is skipped this long while another one answers
# A server started with --token (any non-loopback one): its token, read from this environment
# variable of the verl worker at call time (never written into the export).
TOKEN_ENV = "SLEUTH_TOKEN"

_turn = itertools.count()
_benched: dict[str, float] = {}  # url -> monotonic time its cool-down ends
_lock = threading.Lock()


def _order(urls: list[str]) -> list[str]:
    """The servers to try: the answering ones in turn (round-robin over calls), then the ones
    resting from a failure (tried only when every other one fails)."""
    now = time.monotonic()
    with _lock:
        resting = [url for url in urls if _benched.get(url, 0.0) > now]
    ready = [url for url in urls if url not in resting]
    start = next(_turn) % max(len(ready), 1)
    return ready[start:] + ready[:start] + resting


def retrieve(
    queries: list[str],
    topk: int | None = None,
    urls: list[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[list[Any]]:
    """``result`` of one ``/retrieve`` call: per query, a list of ``{"document", "score"}``.

    Each call starts at the next server in turn and fails over to the others on a connection
    error or a 5xx; a server that failed rests ``COOLDOWN_S`` at the back of the queue. Settings
    are read at call time, so a caller can change the module's constants.
    """
    topk, retries = TOPK if topk is None else topk, max(1, RETRIES)
    urls = list(urls or RETRIEVAL_URLS)
    body = json.dumps({"queries": queries, "topk": topk, "return_scores": True}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    last: dict[str, str] = {}
    for attempt in range(1, retries + 1):
        for url in _order(urls):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
                    result = json.loads(reply.read().decode("utf-8"))["result"]
                with _lock:
                    _benched.pop(url, None)
                return result
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                if exc.code < 500:
                    message = f"retrieval server {url} said {exc.code}: {detail}"
                    raise RuntimeError(message) from None
                last[url] = f"{exc.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last[url] = f"{type(exc).__name__}: {exc}"
            with _lock:
                _benched[url] = time.monotonic() + COOLDOWN_S
        if attempt < retries:
            sleep(attempt * PAUSE_S)
    failures = "; ".join(f"{url} ({last[url]})" for url in urls)
    raise RuntimeError(f"retrieval servers unreachable after {retries} tries: {failures}")


def render(results: list[list[Any]]) -> str:
    """The text verl's SearchTool returned: numbered docs per query, queries split by ---."""
    blocks = []
    for hits in results:
        docs = []
        for n, item in enumerate(hits, start=1):
            document = item.get("document", item) if isinstance(item, dict) else {}
            contents = str(document.get("contents", "")) if isinstance(document, dict) else ""
            title, _, text = contents.partition("\n")
            docs.append(f"Doc {n} (Title: {title})\n{text}")
        blocks.append("\n\n".join(docs))
    return "\n---\n".join(blocks)


@function_tool("search")
def search(query_list: list[str]) -> str:
    """Searches the document collection and returns the top passages for each query.

    Args:
        query_list: A list of fully-formed search queries; results come back for each query.
    """
    if (
        not isinstance(query_list, list)
        or not query_list
        or not all(isinstance(q, str) and q.strip() for q in query_list)
    ):
        message = "Error: 'query_list' must be a non-empty list of non-empty strings."
        return json.dumps({"result": message})
    try:
        results = retrieve(query_list)
    except RuntimeError as exc:  # the model sees the failure, as with verl's own tool
        return json.dumps({"result": f"Search error: {exc}"}, ensure_ascii=False)
    text = render(results) if any(results) else "No search results found."
    return json.dumps({"result": text}, ensure_ascii=False)
