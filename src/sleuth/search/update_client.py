"""Send one update batch to retrieval servers (``POST /documents``), each server in turn.

Replicas (several servers over copies of an index) converge by receiving the same batch; the
answer of each, or its error, is reported separately. A batch is atomic on each server, not
across servers: one that failed can be sent the batch again (upserts repeat harmlessly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from sleuth.types import Document


@dataclass(frozen=True)
class ServerAnswer:
    url: str
    result: dict[str, Any] | None  # the server's UpdateResponse, or None on error
    error: str | None = None


def update_body(upserts: Sequence[Document], deletes: Sequence[str]) -> dict[str, Any]:
    return {
        "documents": [
            {"id": d.id, "title": d.title, "text": d.text, "fields": d.fields} for d in upserts
        ],
        "delete": list(deletes),
    }


def send_update(
    urls: Sequence[str],
    upserts: Sequence[Document],
    deletes: Sequence[str],
    *,
    token: str | None,
    timeout: float = 300.0,
) -> list[ServerAnswer]:
    """POST the batch to each of ``urls``; never raises for one server's failure."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = update_body(upserts, deletes)
    answers = []
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for url in urls:
            base = url.rstrip("/").removesuffix("/retrieve")
            try:
                response = client.post(f"{base}/documents", json=body)
            except httpx.HTTPError as exc:
                answers.append(ServerAnswer(base, None, f"cannot reach the server ({exc})"))
                continue
            if response.status_code != 200:
                answers.append(ServerAnswer(base, None, _error_text(response)))
            else:
                answers.append(ServerAnswer(base, response.json()))
    return answers


def _error_text(response: httpx.Response) -> str:
    try:
        message = response.json().get("error")
    except (ValueError, AttributeError):
        message = None
    return f"HTTP {response.status_code}: {message or response.text[:200]}"
