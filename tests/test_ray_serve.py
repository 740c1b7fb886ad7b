"""``sleuth serve --ray`` on a real local Ray cluster on loopback (issue 30 items 3 and 6).

The module starts a head and one worker node (``ray.cluster_utils.Cluster``) once, deploys
through ``sleuth.serve.ray_app.deploy`` with ``--ray-address`` as a user would, and compares
every answer with the plain single-process server on the same index:
- a dense index of real HotpotQA paragraphs split into 2 shard deployments answers /search,
  /search/batch and /retrieve exactly as one process (ids, scores, ranks), and refuses updates;
- a BM25 index of the bundled corpus on 2 replicas (spread over both nodes) answers exactly as
  one process, with the plain server's validation and auth;
- a replica killed (``ray.kill``) while a client streams searches through ``ServerPool`` with
  retries loses no request, and every answer is the right one;
- a document added through the Ray endpoint is committed once and returned by every replica
  from the next request on; a delete too.
Ray is shut down and the cluster's processes stopped when the module ends. The default run
(cluster and the BM25 test) took 108 s on this 2-core machine under a load average of 9 (not
measured idle); the sharded deployment and the CLI's own run are marked slow.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray.serve")

from sleuth.corpus import load_documents
from sleuth.search import build_index, open_index
from sleuth.search.pool import ServerPool
from sleuth.serve.app import create_app
from sleuth.serve.ray_app import RayOptions, deploy
from sleuth.serve.spec import ServerSpec
from sleuth.types import Document
from tests.conftest import LiveServer, free_port

TOKEN = "ray-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUERIES = [
    "Tinted Windows band",
    "Ashland/63rd station Chicago",
    "which American film director was born first",
    "the album released in 1997 by the rock band",
    "a British television presenter",
    "Greek mythology hero",
]


@pytest.fixture(scope="module")
def hotpot() -> list[Document]:
    return list(load_documents("hotpotqa-1100"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head and a worker node on this machine; requests are spread over both nodes' replicas
    (the HTTP proxy binds 127.0.0.1)."""
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING",)}
    os.environ["RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING"] = "0"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    node = {"num_cpus": 2}  # Ray names this machine's address (it rewrites 127.0.0.1 to it)
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _spec(index: Path) -> ServerSpec:
    return ServerSpec(index, token=TOKEN, quiet=True)


PORT = free_port()  # Serve keeps its proxy's port for the cluster's life: one for the module


def _deploy(cluster: str, index: Path, **options) -> tuple[object, str]:
    port = PORT
    layout = RayOptions(replica_cpus=0.2, shard_cpus=0.1, proxy_location="HeadOnly", **options)
    deployment = deploy(_spec(index), layout, host="127.0.0.1", port=port, address=cluster)
    return deployment, f"http://127.0.0.1:{port}"


def _answers(url: str) -> list[object]:
    """What a client sees from each read route (timings left out)."""
    out: list[object] = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        for query in QUERIES:
            hits = client.post("/search", json={"query": query, "k": 10}).json()["hits"]
            out.append(hits)
        batch = client.post("/search/batch", json={"queries": QUERIES, "k": 5}).json()
        out.append(batch["results"])
        retrieve = {"queries": QUERIES[:3], "topk": 3, "return_scores": True}
        out.append(client.post("/retrieve", json=retrieve).json())
        out.append(client.get(f"/doc/{out[0][0]['id']}").json())  # type: ignore[index]
    return out


def _replicas(deployment_name: str) -> list[object]:
    import ray

    names = ray.util.list_named_actors(all_namespaces=True)
    return [
        ray.get_actor(a["name"], namespace=a["namespace"])
        for a in names
        if a["name"].startswith("SERVE_REPLICA::") and f"#{deployment_name}#" in a["name"]
    ]


@pytest.mark.slow  # a second deployment and a dense index: the merge itself is exercised by
# default in tests/test_dense_shards.py (the same shard files and merge, in one process)
def test_dense_shards_answer_as_one_process(cluster: str, hotpot, tmp_path: Path) -> None:
    index = build_index(hotpot[:120], tmp_path / "dense", engine="dense")
    with LiveServer(create_app(open_index(index), token=TOKEN, access_log=False)) as plain:
        expected = _answers(plain.url)
    deployment, url = _deploy(cluster, index, shards=2)
    try:
        assert len(_replicas("DenseShard0")) == len(_replicas("DenseShard1")) == 1
        assert _answers(url) == expected
        update = {"documents": [{"id": "x", "title": "t", "text": "words"}]}
        refused = httpx.post(f"{url}/documents", json=update, headers=AUTH)
        assert refused.status_code == 400 and "sharded deployment" in refused.json()["error"]
    finally:
        deployment.shutdown()  # type: ignore[attr-defined]


@pytest.mark.slow  # a Ray cluster and a Serve deployment (~1-1.5 min on 2 cores): CI's 15
# minutes; the dense shard merge (test_dense_shards.py), the CLI's refusals (test_ray_cli.py) and
# servers following generations (test_serve_follow.py) run by default
def test_bm25_replicas_failover_and_updates(cluster: str, hotpot, tmp_path: Path) -> None:
    index = build_index(hotpot, tmp_path / "bm25", source="hotpotqa-1100")
    with LiveServer(create_app(open_index(index), token=TOKEN, access_log=False)) as plain:
        expected = _answers(plain.url)
    deployment, url = _deploy(cluster, index, replicas=2)
    try:
        replicas = _replicas("SleuthServer")
        nodes = {_node_of(replica) for replica in replicas}
        assert len(replicas) == 2 and len(nodes) == 2  # one replica on each node
        assert _answers(url) == expected
        # the plain server's validation and auth, through the Ray proxy
        empty = httpx.post(f"{url}/search", json={"query": " ", "k": 3}, headers=AUTH)
        assert empty.status_code == 400 and "query is empty" in empty.json()["error"]
        assert httpx.post(f"{url}/search", json={"query": "band", "k": 3}).status_code == 401
        wrong = httpx.post(f"{url}/search", json={"query": "band", "k": "3"}, headers=AUTH)
        assert wrong.status_code == 400

        _kill_a_replica_under_load(url, replicas[0], expected)
        _update_reaches_every_replica(url, hotpot)
    finally:
        deployment.shutdown()  # type: ignore[attr-defined]


def _node_of(actor: object) -> str:
    """The node an actor runs on, from the cluster's actor table (no dashboard needed)."""
    from ray._private.state import actors

    info = actors(actor_id=actor._actor_id.hex())  # type: ignore[attr-defined]
    return info["Address"]["NodeID"]


def _kill_a_replica_under_load(url: str, victim: object, expected: list[object]) -> None:
    import ray

    want = {q: [h["id"] for h in hits] for q, hits in zip(QUERIES, expected, strict=False)}
    pool = ServerPool(url, headers=AUTH, retries=8, backoff_s=0.2, cooldown_s=0.2)
    answered: list[tuple[str, list[str]]] = []
    failures: list[str] = []

    def stream() -> None:
        for i in range(120):
            query = QUERIES[i % len(QUERIES)]
            try:
                _, response = pool.request("POST", "/search", json={"query": query, "k": 10})
            except Exception as exc:
                failures.append(repr(exc))
                continue
            answered.append((query, [h["id"] for h in response.json()["hits"]]))

    thread = threading.Thread(target=stream)
    thread.start()
    while len(answered) < 20 and thread.is_alive():
        time.sleep(0.01)
    ray.kill(victim, no_restart=True)
    thread.join(timeout=180)
    pool.close()
    assert not failures and len(answered) == 120
    assert all(ids == want[query] for query, ids in answered)


def _update_reaches_every_replica(url: str, hotpot: list[Document]) -> None:
    """After the POST's answer every request, whichever replica takes it, sees the commit."""
    deadline = time.monotonic() + 120
    while len(_replicas("SleuthServer")) < 2 or _health(url) is None:  # the killed one is back
        assert time.monotonic() < deadline, "Ray Serve did not replace the killed replica"
        time.sleep(0.5)
    new = {"id": "quagga-1", "title": "Quagga", "text": "The quagga was a plains zebra."}
    answer = httpx.post(f"{url}/documents", json={"documents": [new]}, headers=AUTH, timeout=60)
    assert answer.status_code == 200 and answer.json()["generation"] == 1
    for _ in range(30):
        hits = _search(url, "quagga plains zebra")
        assert hits[0] == "quagga-1"
    gone = hotpot[0]
    answer = httpx.delete(f"{url}/doc/{gone.id}", headers=AUTH, timeout=60)
    assert answer.status_code == 200 and answer.json()["generation"] == 2
    for _ in range(30):
        assert gone.id not in _search(url, gone.title)
        assert _health(url)["index"]["generation"] == 2  # type: ignore[index]


def _search(url: str, query: str) -> list[str]:
    response = httpx.post(f"{url}/search", json={"query": query, "k": 5}, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def _health(url: str) -> dict[str, object] | None:
    try:
        response = httpx.get(f"{url}/health", timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.mark.slow
def test_the_cli_deploys_onto_the_cluster_and_ctrl_c_takes_it_down(
    cluster: str, hotpot, tmp_path: Path
) -> None:
    """``sleuth serve INDEX --ray --ray-address ADDR`` as a user runs it: the banner, answers,
    and after SIGINT the application is gone while the cluster keeps running."""
    import signal
    import subprocess
    import sys

    index = build_index(hotpot[:50], tmp_path / "bm25")
    command = [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--ray"]
    command += ["--ray-address", cluster, "--port", str(PORT), "--replica-cpus", "0.2", "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
    deadline = time.monotonic() + 240
    while not any("serving index" in line for line in lines):
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    url = f"http://127.0.0.1:{PORT}"
    assert f"at {url}" in "".join(lines) and "1 replica" in "".join(lines)
    response = httpx.post(f"{url}/search", json={"query": hotpot[3].title, "k": 1})
    assert response.json()["hits"][0]["id"] == hotpot[3].id
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0
    assert "deployment shut down" in "".join(lines)
    gone = httpx.post(f"{url}/search", json={"query": "band", "k": 1}, timeout=10)
    assert gone.status_code == 404  # the proxy still runs; the application is deleted
