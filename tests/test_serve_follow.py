"""Servers sharing one index folder follow each other's commits (issue 30 item 6, replicas).

Two real servers on loopback serve the same BM25 folder: an update sent to one is searchable on
the other from its next request (no 503 "restart"), deletes too, and ``sleuth index update``
from another process is followed as well; an outside rebuild of the folder is still a 503.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sleuth.corpus import load_documents
from sleuth.search import build_index, open_index
from sleuth.search.updates import apply_update
from sleuth.serve.app import create_app
from sleuth.types import Document
from tests.conftest import LiveServer

TOKEN = "follow-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def hotpot() -> list[Document]:
    return list(load_documents("hotpotqa-1100"))[:40]


def _server(index: Path, **options) -> LiveServer:
    return LiveServer(
        create_app(open_index(index), token=TOKEN, index_folder=index, access_log=False, **options)
    )


def _top_ids(url: str, query: str, k: int = 5) -> list[str]:
    response = httpx.post(f"{url}/search", json={"query": query, "k": k}, headers=AUTH)
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def test_a_commit_on_one_server_is_served_by_the_other(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:30], tmp_path / "idx")
    new = hotpot[30]
    with _server(index) as first, _server(index) as second:
        assert new.id not in _top_ids(second.url, new.title)
        body = {"documents": [{"id": new.id, "title": new.title, "text": new.text}]}
        answer = httpx.post(f"{first.url}/documents", json=body, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["generation"] == 1
        assert _top_ids(second.url, new.title)[0] == new.id  # the next request sees it
        health = httpx.get(f"{second.url}/health").json()["index"]
        assert health["generation"] == 1 and health["current"] is True
        # a delete through the second server reaches the first
        gone = hotpot[0]
        assert gone.id in _top_ids(first.url, gone.title)
        answer = httpx.delete(f"{second.url}/doc/{gone.id}", headers=AUTH)
        assert answer.status_code == 200 and answer.json()["generation"] == 2
        assert gone.id not in _top_ids(first.url, gone.title)
        assert httpx.get(f"{first.url}/doc/{gone.id}", headers=AUTH).status_code == 404
        # an update by another process (the CLI's commit) is followed too
        apply_update(index, [hotpot[31]])
        assert _top_ids(first.url, hotpot[31].title)[0] == hotpot[31].id
        assert _top_ids(second.url, hotpot[31].title)[0] == hotpot[31].id
        # an outside rebuild is not an update: both refuse until restarted
        build_index(hotpot[:5], index)
        for url in (first.url, second.url):
            response = httpx.post(f"{url}/search", json={"query": "film"}, headers=AUTH)
            assert response.status_code == 503 and "restart" in response.json()["error"]


def test_a_server_that_does_not_follow_refuses_after_a_foreign_commit(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:10], tmp_path / "idx")
    with _server(index, follow_updates=False) as server:
        assert _top_ids(server.url, hotpot[0].title)[0] == hotpot[0].id
        apply_update(index, [hotpot[10]])
        response = httpx.post(f"{server.url}/search", json={"query": "film"}, headers=AUTH)
        assert response.status_code == 503
