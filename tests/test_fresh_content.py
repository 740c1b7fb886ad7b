"""Fresh content without downtime (issue 30 item 6): documents added, replaced and deleted in a
built index, offline and through a live server, committed atomically as index generations."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer
from serve_process import ServeProcess, sleuth

from sleuth.corpus import load_documents
from sleuth.errors import DocumentNotFound, IndexFormatError
from sleuth.search import build_index, open_index, read_manifest
from sleuth.search import updates as updates_module
from sleuth.search.updates import UpdateError, apply_update
from sleuth.serve.app import create_app
from sleuth.types import Document

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUERIES = [
    "football club in england",
    "American actor film",
    "album released by the band",
    "river in Europe",
    "university founded",
    "quagga zebra stripes",
]


@pytest.fixture(scope="module")
def hotpot() -> list[Document]:
    """The first 320 paragraphs of the bundled HotpotQA corpus."""
    return list(itertools.islice(load_documents("hotpotqa-1100"), 320))


def _ranking(engine, query: str, k: int = 10) -> list[tuple[float, str]]:
    """(score, id) best first; ties ordered by id, since row order differs after updates."""
    return sorted(
        ((round(h.score, 4), h.id) for h in engine.search(query, k)), key=lambda x: (-x[0], x[1])
    )


def _assert_same_as_rebuilt(
    index: Path, final: list[Document], tmp_path: Path, engine: str
) -> None:
    rebuilt = open_index(build_index(final, tmp_path / f"rebuilt-{engine}", engine=engine))
    updated = open_index(index)
    assert len(updated) == len(rebuilt) == len(final)
    lexical_pairs = (
        [(updated, rebuilt)] if engine == "bm25" else [(updated.lexical, rebuilt.lexical)]
    )
    for query in [*QUERIES, final[-1].title, final[0].title]:
        for mine, theirs in lexical_pairs:
            assert _ranking(mine, query) == _ranking(theirs, query), query
    if engine == "hybrid":  # the dense half: same vectors, deleted rows masked
        for query in QUERIES:
            mine = {h.id: h.score for h in updated.dense.search(query, 5)}
            theirs = {h.id: h.score for h in rebuilt.dense.search(query, 5)}
            assert mine.keys() == theirs.keys(), query
            assert all(abs(mine[i] - theirs[i]) < 1e-4 for i in mine)


def test_bm25_updates_equal_a_rebuild_delta_and_rebuild_paths(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:250], tmp_path / "idx", source="hotpotqa-1100")
    first = apply_update(index, hotpot[250:300])  # adds only: a delta segment
    assert (first.generation, first.added, first.bm25) == (1, 50, "delta")
    _assert_same_as_rebuilt(index, hotpot[:300], tmp_path / "a", "bm25")
    new = Document(hotpot[3].id, "Quagga", "The quagga is an extinct zebra with stripes.")
    second = apply_update(index, [new, *hotpot[300:310]], [hotpot[7].id, hotpot[260].id])
    assert (second.generation, second.added, second.updated, second.deleted) == (2, 10, 1, 2)
    assert second.bm25 == "rebuilt" and second.documents == 300 + 10 - 2
    gone = {hotpot[3].id, hotpot[7].id, hotpot[260].id}
    final = [d for d in hotpot[:300] if d.id not in gone] + [new, *hotpot[300:310]]
    _assert_same_as_rebuilt(index, final, tmp_path / "b", "bm25")
    manifest = read_manifest(index)
    assert manifest["generation"] == 2 and manifest["data"] == "generations/000002"
    assert [
        (u["added"], u["updated"], u["deleted"], u["generation"]) for u in manifest["updates"]
    ] == [
        (50, 0, 0, 1),
        (10, 1, 2, 2),
    ]
    assert manifest["corpus"]["documents"] == len(final)
    # only the current generation and the one before it stay on disk
    assert sorted(p.name for p in (index / "generations").iterdir() if p.is_dir()) == [
        "000001",
        "000002",
    ]
    assert not (index / "docs.sqlite").exists()


def test_hybrid_updates_both_halves_and_masks_deleted_vectors(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:30], tmp_path / "hy", engine="hybrid")
    new = Document("zebra-1", "Quagga", "The quagga is an extinct subspecies of plains zebra.")
    apply_update(index, [new, hotpot[30]])
    result = apply_update(index, [], [hotpot[0].id, hotpot[5].id])
    assert result.bm25 == "rebuilt"
    engine = open_index(index)
    assert engine.search("extinct zebra quagga", 1)[0].id == "zebra-1"
    returned = {h.id for q in [hotpot[0].title, hotpot[5].title] for h in engine.search(q, 31)}
    assert hotpot[0].id not in returned and hotpot[5].id not in returned
    assert len(engine.dense.search(hotpot[0].title, 40)) == 30  # every live vector, no deleted one
    final = [d for d in hotpot[1:31] if d.id != hotpot[5].id] + [new]
    _assert_same_as_rebuilt(index, final, tmp_path, "hybrid")


def test_bad_batches_change_nothing(hotpot: list[Document], tmp_path: Path) -> None:
    index = build_index(hotpot[:50], tmp_path / "idx")
    before = (index / "manifest.json").read_bytes()
    with pytest.raises(DocumentNotFound, match="'no-such-id'"):
        apply_update(index, hotpot[50:52], ["no-such-id"])
    with pytest.raises(UpdateError, match="appears twice"):
        apply_update(index, [hotpot[50]], [hotpot[50].id])
    with pytest.raises(UpdateError, match="nothing to update"):
        apply_update(index, [], [])
    with pytest.raises(UpdateError, match="neither title nor text"):
        apply_update(index, [Document("x", "", " ")])
    with pytest.raises(IndexFormatError, match="no such index folder"):
        apply_update(tmp_path / "nowhere", hotpot[50:51])
    assert not (tmp_path / "nowhere").exists()
    assert (index / "manifest.json").read_bytes() == before
    assert [p.name for p in (index / "generations").iterdir() if p.is_dir()] == []


@pytest.mark.parametrize("step", ["docstore", "bm25", "dense"])
def test_a_failure_between_writes_leaves_the_last_commit(
    hotpot: list[Document], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    index = build_index(hotpot[:40], tmp_path / "idx")
    apply_update(index, [hotpot[40]])

    def crash(at: str) -> None:
        if at == step:
            raise OSError(f"disk full at {at}")

    monkeypatch.setattr(updates_module, "checkpoint", crash)
    with pytest.raises(OSError, match="disk full"):
        apply_update(index, [hotpot[41]], [hotpot[0].id])
    engine = open_index(index)
    assert read_manifest(index)["generation"] == 1 and len(engine) == 41
    assert engine.get(hotpot[0].id).id == hotpot[0].id
    assert not (index / "generations" / "000002").exists()
    monkeypatch.undo()
    assert apply_update(index, [hotpot[41]]).generation == 2


KILLED_UPDATE = """
import sys, time
from sleuth.search import updates
from sleuth.types import Document
def pause(step):
    if step == "bm25":
        print("paused", flush=True)
        time.sleep(60)
updates.checkpoint = pause
updates.apply_update(sys.argv[1], [Document("late", "Late", "a late document")], ["doc0"])
"""


def test_a_killed_update_leaves_the_last_commit_readable(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:40], tmp_path / "idx")
    apply_update(index, [hotpot[40]])
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_UPDATE, str(index)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "paused"
    assert (index / "generations" / "000002" / "docs.sqlite").exists()  # half written
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    engine = open_index(index)
    assert len(engine) == 41 and engine.get("doc0").id == "doc0"
    with pytest.raises(DocumentNotFound):
        engine.get("late")
    result = apply_update(index, [hotpot[41]])  # the next commit clears the leftovers
    assert result.generation == 2 and len(open_index(index)) == 42


def _post(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/documents", json=body, headers=headers or AUTH, timeout=60)


def _doc(doc: Document) -> dict:
    return {"id": doc.id, "title": doc.title, "text": doc.text}


def test_live_server_updates_while_a_thread_searches(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:200], tmp_path / "idx")
    failures: list[str] = []
    seen: list[tuple[float, set[str]]] = []
    stop = threading.Event()

    def search_forever(url: str) -> None:
        with httpx.Client(headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                for query in ("fresh quagga", "football club"):
                    sent = time.monotonic()  # a search sent before a commit may see the old state
                    response = client.post(f"{url}/search", json={"query": query, "k": 20})
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        seen.append((sent, {h["id"] for h in response.json()["hits"]}))

    with LiveServer(create_app(open_index(index), token=TOKEN, index_folder=index)) as server:
        searcher = threading.Thread(target=search_forever, args=(server.url,))
        searcher.start()
        deleted_at: dict[str, float] = {}
        try:
            for n in range(6):
                fresh = Document(f"fresh-{n}", f"Fresh quagga {n}", f"fresh quagga news number {n}")
                response = _post(server.url, {"documents": [_doc(fresh), _doc(hotpot[200 + n])]})
                assert response.status_code == 200, response.text
                assert response.json()["generation"] == 2 * n + 1
                hits = httpx.post(
                    f"{server.url}/search",
                    json={"query": f"fresh quagga {n}", "k": 1},
                    headers=AUTH,
                ).json()["hits"]
                assert hits[0]["id"] == f"fresh-{n}"  # searchable when the answer arrives
                response = httpx.delete(f"{server.url}/doc/fresh-{n}", headers=AUTH, timeout=60)
                assert response.status_code == 200 and response.json()["deleted"] == 1
                deleted_at[f"fresh-{n}"] = time.monotonic()
        finally:
            stop.set()
            searcher.join(timeout=30)
        assert failures == []
        assert len(seen) > 5
        for doc_id, when in deleted_at.items():  # a deleted document is never seen after
            assert not any(doc_id in ids for sent, ids in seen if sent > when)
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["index"]["generation"] == 12 and health["index"]["current"] is True
        assert health["documents"] == 206
    _assert_same_as_rebuilt(index, hotpot[:206], tmp_path, "bm25")


def test_updates_need_a_configured_token_and_valid_bodies(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:20], tmp_path / "idx")
    with LiveServer(create_app(open_index(index), index_folder=index)) as server:
        response = _post(server.url, {"documents": [_doc(hotpot[30])]}, headers={})
        assert response.status_code == 403 and "--token" in response.json()["error"]
        assert httpx.delete(f"{server.url}/doc/doc0").status_code == 403
    with LiveServer(create_app(open_index(index), token=TOKEN, index_folder=index)) as server:
        wrong = _post(
            server.url, {"documents": [_doc(hotpot[30])]}, headers={"Authorization": "Bearer x"}
        )
        assert wrong.status_code == 401
        bad = {
            "documents: an id is empty": {"documents": [{"id": " ", "text": "t"}]},
            "unknown field `txt`": {"documents": [{"id": "a", "txt": "t"}]},
            "Expected `str`, got `int` - at `$.documents[0].text`": {
                "documents": [{"id": "a", "text": 3}]
            },
            "nothing to update": {},
            "appears twice": {"documents": [_doc(hotpot[30]), _doc(hotpot[30])]},
            "neither title nor text": {"documents": [{"id": "a"}]},
        }
        for message, body in bad.items():
            response = _post(server.url, body)
            assert response.status_code == 400 and message in response.json()["error"], (
                response.text
            )
        response = httpx.delete(f"{server.url}/doc/no-such-doc", headers=AUTH)
        assert response.status_code == 404 and "'no-such-doc'" in response.json()["error"]
        response = httpx.post(
            f"{server.url}/documents", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}
        )
        assert response.status_code == 415
        assert read_manifest(index).get("generation", 0) == 0


def test_an_outside_rebuild_still_trips_the_watch_after_own_updates(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:20], tmp_path / "idx")
    with ServeProcess(index, "--token", TOKEN, "--quiet") as server:
        assert _post(server.url, {"documents": [_doc(hotpot[20])]}).status_code == 200
        search = httpx.post(f"{server.url}/search", json={"query": hotpot[20].title}, headers=AUTH)
        assert search.status_code == 200 and search.json()["hits"][0]["id"] == hotpot[20].id
        build_index(hotpot[:5], index)  # an outside rebuild of the same folder
        search = httpx.post(f"{server.url}/search", json={"query": "film"}, headers=AUTH)
        assert search.status_code == 503 and "restart the server" in search.json()["error"]
        assert _post(server.url, {"documents": [_doc(hotpot[21])]}).status_code == 503


def test_cli_updates_an_index_offline_and_replicas_through_servers(
    hotpot: list[Document], tmp_path: Path
) -> None:
    index = build_index(hotpot[:20], tmp_path / "idx")
    add = tmp_path / "add.jsonl"
    add.write_text("".join(json.dumps(_doc(d)) + "\n" for d in hotpot[20:23]))
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{hotpot[0].id}\n\n{hotpot[1].id}\n")
    done = sleuth("index", "update", str(index), "--add", str(add), "--delete", str(ids))
    assert done.returncode == 0, done.stderr
    assert "generation 1: added 3, updated 0, deleted 2; 21 documents" in done.stderr
    replica = tmp_path / "replica"
    shutil.copytree(index, replica)
    with (
        ServeProcess(index, "--token", TOKEN, "--quiet") as one,
        ServeProcess(replica, "--token", TOKEN, "--quiet") as two,
    ):
        ids.write_text(f"{hotpot[2].id}\n")
        urls = f"{one.url},{two.url}"
        done = sleuth(
            "index", "update", "--search-url", urls, "--token", TOKEN, "--delete", str(ids)
        )
        assert done.returncode == 0, done.stderr
        for url in (one.url, two.url):
            assert (
                f"{url}: generation 2: added 0, updated 0, deleted 1; 20 documents" in done.stderr
            )
        again = sleuth("index", "update", "--search-url", urls, "--delete", str(ids))
        assert (
            again.returncode != 0 and "HTTP 401" in again.stderr and "not updated" in again.stderr
        )
    assert read_manifest(replica)["corpus"] == read_manifest(index)["corpus"]
    missing = sleuth("index", "update", str(index))
    assert missing.returncode != 0 and "nothing to update" in missing.stderr
