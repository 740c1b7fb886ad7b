"""Fresh content: how long from ``POST /documents`` until the document is searchable.

``sleuth serve --token`` serves a BM25 index of the whole bundled HotpotQA corpus (10,785
paragraphs) on 127.0.0.1. Each update is one small batch sent while a client thread searches
without pause; the delay is measured on the client from sending the POST until a search
returns the new document (the server answers after swapping to the new generation, so this is
the POST's round trip plus one search). Two kinds of batch, because BM25 is written two ways:
- ``add``: one new document (a delta segment; the earlier segments are hard-linked);
- ``replace+delete``: one document replaced and one deleted (the BM25 index of the new
  generation is rebuilt from the document store, off the serving threads).
The searching thread's latencies and failures are recorded too. Run:
``python -m bench.fresh_content`` (``--quick``: 10 updates of each kind).
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import threading
import time
from typing import Any

import httpx

from bench.common import REPO, WORK, percentile
from bench.serving import free_port, stop

UPDATES = 50
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OUT = REPO / "bench" / "results" / "fresh_content.json"


def start_server(index: Any, port: int) -> Any:
    import os
    import subprocess

    args = [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SLEUTH_TOKEN": TOKEN}
    process = subprocess.Popen(
        [*args, "--quiet"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
        "n": len(values),
    }


def searchable_delay(client: httpx.Client, url: str, body: dict, probe: str, doc_id: str) -> float:
    """Milliseconds from sending ``body`` until a search for ``probe`` ranks ``doc_id`` first."""
    started = time.perf_counter()
    response = client.post(f"{url}/documents", json=body)
    response.raise_for_status()
    while True:
        hits = client.post(f"{url}/search", json={"query": probe, "k": 1}).json()["hits"]
        if hits and hits[0]["id"] == doc_id:
            return (time.perf_counter() - started) * 1e3


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.corpus import load_documents, load_queries
    from sleuth.search import build_index

    updates = 10 if quick else UPDATES
    root = WORK / "fresh_content"
    shutil.rmtree(root, ignore_errors=True)
    docs = list(load_documents("hotpotqa-1100"))
    index = build_index(docs, root / "hotpot-bm25", source="hotpotqa-1100")
    questions = list(itertools.islice(load_queries("hotpotqa-1100").values(), 200))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(index, port)
    search_ms: list[float] = []
    failures: list[str] = []
    stop_searching = threading.Event()

    def search_forever() -> None:
        with httpx.Client(headers=AUTH, timeout=60) as client:
            for query in itertools.cycle(questions):
                if stop_searching.is_set():
                    return
                started = time.perf_counter()
                response = client.post(f"{url}/search", json={"query": query, "k": 10})
                search_ms.append((time.perf_counter() - started) * 1e3)
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")

    delays: dict[str, list[float]] = {"add": [], "replace+delete": []}
    searcher = threading.Thread(target=search_forever)
    try:
        with httpx.Client(headers=AUTH, timeout=300) as client:
            searcher.start()
            for n in range(updates):
                word = f"freshword{n}x"
                new = {"id": f"fresh-{n}", "title": f"Fresh {n}", "text": f"{word} news"}
                body = {"documents": [new]}
                delays["add"].append(searchable_delay(client, url, body, word, new["id"]))
            for n in range(updates):
                word = f"replacedword{n}x"
                replaced = {"id": f"fresh-{n}", "title": f"Replaced {n}", "text": f"{word} news"}
                body = {"documents": [replaced], "delete": [docs[n].id]}
                delays["replace+delete"].append(
                    searchable_delay(client, url, body, word, replaced["id"])
                )
            health = client.get(f"{url}/health").json()
    finally:
        stop_searching.set()
        searcher.join(timeout=60)
        stop(server)
    return {
        "corpus": "hotpotqa-1100 (10,785 paragraphs), BM25",
        "updates_per_kind": updates,
        "post_to_searchable": {kind: summary(values) for kind, values in delays.items()},
        "searches_during_updates": {**summary(search_ms), "failed": len(failures)},
        "final_generation": health["index"]["generation"],
        "final_documents": health["documents"],
        "machine": "2 shared CPU cores (other jobs running)",
    }


def main() -> None:
    from sleuth.jsonio import write_json_atomic

    result = run(quick="--quick" in sys.argv)
    print(json.dumps(result, indent=2))
    if "--quick" not in sys.argv:
        write_json_atomic(OUT, result)


if __name__ == "__main__":
    main()
