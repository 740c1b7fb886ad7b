"""A ``SearchEngine`` over HTTP: a Sleuth server or any Search-R1 ``/retrieve`` server."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from sleuth.errors import DocumentNotFound, SleuthError
from sleuth.search.base import BatchSearch
from sleuth.search.pool import BACKOFF_S, COOLDOWN_S, ServerPool
from sleuth.types import Document, Hit

PROTOCOLS = ("auto", "sleuth", "search-r1")


class RemoteSearchEngine(BatchSearch):
    """Sync client over one server or a pool of them (``sleuth.search.pool``): connection reuse,
    balancing, failover and bounded retries on connection errors and 5xx. Thread-safe."""

    name = "remote"

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        protocol: str = "auto",
        timeout: float = 30.0,
        retries: int = 3,
        cooldown_s: float = COOLDOWN_S,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise SleuthError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._pool = ServerPool(
            url,
            headers=headers,
            timeout=timeout,
            retries=retries,
            cooldown_s=cooldown_s,
            backoff_s=backoff_s,
            detect=_detect,
            protocol=None if protocol == "auto" else protocol,
        )
        self.url = ",".join(self._pool.urls)  # what error messages and manifests name
        self._health: dict[str, Any] | None = None
        if self._pool.protocol is None or any(s.protocol is None for s in self._pool.servers):
            self._pool.probe_all()
            if self._pool.protocol is None:  # nobody answered: retried, then one clear error
                self._pool.request("GET", "/health")
        self.protocol = self._pool.protocol or "search-r1"
        self._health = next((s.health for s in self._pool.servers if s.health), None)

    @property
    def pool(self) -> ServerPool:
        return self._pool

    def _request(self, method: str, path: str, **kwargs: Any) -> tuple[str, httpx.Response]:
        """(URL of the server that answered, its response): any status below 500."""
        server, response = self._pool.request(method, path, **kwargs)
        return server.url, response

    def __len__(self) -> int:
        if self._health is None:
            return 0
        return int(self._health.get("documents", 0))

    def _check(self, answered: tuple[str, httpx.Response]) -> Any:
        url, response = answered
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise SleuthError(f"search server {url} answered {response.status_code}: {message}")
        return response.json()

    def _search_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if self.protocol == "sleuth":
            results: list[list[Hit]] = []
            step = self._queries_per_request(k)
            for start in range(0, len(queries), step):
                body = {"queries": list(queries[start : start + step]), "k": k}
                payload = self._check(self._request("POST", "/search/batch", json=body))
                results.extend([Hit(**hit) for hit in hits] for hits in payload["results"])
            return results
        body = {"queries": list(queries), "topk": k, "return_scores": True}
        payload = self._check(self._request("POST", "/retrieve", json=body))
        return [
            [_searchr1_hit(item, rank) for rank, item in enumerate(items, start=1)]
            for items in payload["result"]
        ]

    def _queries_per_request(self, k: int) -> int:
        """Split batches so each stays within the server's ``max_batch_hits`` (from /health)."""
        if self._health is None:  # protocol given explicitly: /health not read yet
            _, response = self._request("GET", "/health")
            try:
                self._health = response.json() if response.status_code == 200 else {}
            except ValueError:
                self._health = {}
        limits = (self._health or {}).get("limits", {})
        max_hits = limits.get("max_batch_hits")
        max_batch = limits.get("max_batch", 512)
        if not isinstance(max_hits, int) or max_hits < 1:
            return max_batch
        return max(1, min(max_batch, max_hits // k))

    def get(self, doc_id: str) -> Document:
        if self.protocol != "sleuth":
            raise SleuthError(
                f"{self.url} speaks only Search-R1's /retrieve, which cannot fetch a document by id"
            )
        answered = self._request("GET", f"/doc/{doc_path(doc_id)}")
        if answered[1].status_code == 404:
            raise DocumentNotFound(f"no document with id {doc_id!r} on {answered[0]}")
        data = self._check(answered)
        return Document(
            id=data["id"], title=data["title"], text=data["text"], fields=data["fields"]
        )

    def close(self) -> None:
        self._pool.close()


def _detect(response: httpx.Response) -> tuple[str, dict[str, Any] | None]:
    """A server's protocol from its ``/health`` answer: Sleuth's names its document count;
    anything else (a Search-R1 server has no /health: 404) speaks only ``/retrieve``."""
    if response.status_code == 200:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "documents" in payload:
            return "sleuth", payload
    return "search-r1", None


def doc_path(doc_id: str) -> str:
    """``doc_id`` as one percent-encoded path segment: ``/``, space, ``?``, ``#``, ``%`` all
    encoded, and ``.``/``..`` too, which clients would otherwise resolve as relative paths."""
    encoded = quote(doc_id, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def _searchr1_hit(item: dict[str, Any], rank: int) -> Hit:
    doc, score = (item["document"], item.get("score", 0.0)) if "document" in item else (item, 0.0)
    contents = doc.get("contents", "")
    title, _, text = contents.partition("\n")
    title = doc.get("title") or title.strip('"')
    text = doc.get("text") or text
    doc_id = doc.get("id") or hashlib.sha1(contents.encode("utf-8")).hexdigest()[:16]
    return Hit(id=str(doc_id), score=float(score), title=title, text=text, rank=rank)
