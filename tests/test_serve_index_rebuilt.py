"""``sleuth serve`` whose index folder is rebuilt under it (issue 33 item 19): the server kept
answering without a word, and wrongly (old BM25 row numbers read from the new document store:
a search for "apples" returned "oranges"). Now /health and the log say so and searches are a
503 saying to restart."""

from __future__ import annotations

from pathlib import Path

import httpx
from serve_process import ServeProcess

from sleuth.search import build_index
from sleuth.types import Document

SEARCH = {"query": "apples", "k": 1}


def _build(folder: Path, words: list[str]) -> None:
    docs = [Document(id=f"d{n}", title=w, text=f"a page about {w}") for n, w in enumerate(words)]
    build_index(docs, folder, source="test")


def test_a_rebuilt_index_folder_is_reported_and_not_served_half_old(tmp_path: Path) -> None:
    index = tmp_path / "index"
    _build(index, ["apples", "pears"])
    with ServeProcess(index) as server:
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["index"]["current"] is True and health["index"]["warning"] is None
        hits = httpx.post(f"{server.url}/search", json=SEARCH, timeout=10).json()["hits"]
        assert hits[0]["title"] == "apples"
        _build(index, ["oranges", "lemons", "limes"])
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["status"] == "ok" and health["index"]["current"] is False
        assert "rebuilt after this server opened it" in health["index"]["warning"]
        assert "restart the server" in health["index"]["warning"]
        line = server.wait_for_line("index folder was rebuilt")
        assert str(index) in line
        for response in (
            httpx.post(f"{server.url}/search", json=SEARCH, timeout=10),
            httpx.get(f"{server.url}/doc/d0", timeout=10),
        ):
            assert response.status_code == 503
            assert "restart the server" in response.json()["error"]
    assert sum("index folder was rebuilt" in x for x in server.lines) == 1  # said once


def test_a_search_notices_the_rebuild_without_health(tmp_path: Path) -> None:
    """Nobody polls /health: the first search after the rebuild is refused and logged."""
    index = tmp_path / "index"
    _build(index, ["apples", "pears"])
    with ServeProcess(index, "--quiet") as server:
        _build(index, ["oranges"])
        response = httpx.post(f"{server.url}/search", json=SEARCH, timeout=10)
        assert response.status_code == 503 and "rebuilt" in response.json()["error"]
        server.wait_for_line("index folder was rebuilt")
