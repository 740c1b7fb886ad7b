"""Several retrieval servers behind one ``--search-url``: balancing, failover when a server dies,
4xx not retried, an address file that gains a server, one clear error when all are down, and an
``eval run`` that loses no episode when one of its two servers is killed. All servers are real
ones on loopback: Sleuth's app in-process, ``sleuth serve`` child processes, or a tiny stub
(standard library HTTP server) where a fault must be exact."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from conftest import LiveServer, free_port
from serve_process import ServeProcess, sleuth

from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.search.pool import PoolError, parse_addresses
from sleuth.search.remote import RemoteSearchEngine
from sleuth.serve.app import create_app

QUERIES = [q.question for q in load_benchmark("hotpotqa-1100:test", limit=40).questions]


class Counted:
    """An ASGI app that counts the requests reaching it by path (the server's own view)."""

    def __init__(self, app) -> None:
        self.app, self.hits = app, Counter()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.hits[scope["path"]] += 1
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def three(hotpot_bm25):
    apps = [Counted(create_app(hotpot_bm25, default_topk=3)) for _ in range(3)]
    with LiveServer(apps[0]) as a, LiveServer(apps[1]) as b, LiveServer(apps[2]) as c:
        yield [a, b, c], apps


def _ids(hits_per_query) -> list[list[str]]:
    return [[h.id for h in hits] for hits in hits_per_query]


def test_requests_are_spread_over_the_servers_and_answers_match_one_index(three, hotpot_bm25):
    servers, apps = three
    before = [app.hits["/search/batch"] for app in apps]
    remote = RemoteSearchEngine(",".join(s.url for s in servers))
    assert remote.protocol == "sleuth" and len(remote) == 10_785
    answers = [remote.search(q, 3) for q in QUERIES[:30]]
    assert _ids(answers) == _ids(hotpot_bm25.search_batch(QUERIES[:30], 3))
    spread = [app.hits["/search/batch"] - n for app, n in zip(apps, before, strict=True)]
    assert spread == [10, 10, 10]  # one at a time: each server in turn

    # Eight threads at once (as eval run's workers search): all answered, all servers used.
    before = [app.hits["/search/batch"] for app in apps]
    results: dict[int, list[str]] = {}

    def ask(i: int) -> None:
        results[i] = [h.id for h in remote.search(QUERIES[i], 3)]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(40)] == _ids(hotpot_bm25.search_batch(QUERIES, 3))
    spread = [app.hits["/search/batch"] - n for app, n in zip(apps, before, strict=True)]
    assert sum(spread) == 40 and min(spread) >= 5, spread
    remote.close()


class Stub(BaseHTTPRequestHandler):
    """A Sleuth-looking server (its /health names a document count) whose searches answer
    ``status``; it counts every request by path."""

    status: ClassVar[int] = 400
    hits: ClassVar[Counter] = Counter()

    def _answer(self, status: int, payload: dict) -> None:
        type(self).hits[self.path] += 1
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        health = 200 if self.status < 500 else self.status
        self._answer(health, {"documents": 1, "limits": {"max_batch": 512}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._answer(self.status, {"error": f"stub says {self.status}"})

    def log_message(self, *args) -> None:
        pass


def _stub(status: int) -> tuple[ThreadingHTTPServer, type[Stub]]:
    handler = type("StubN", (Stub,), {"status": status, "hits": Counter()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def test_a_4xx_is_not_retried_and_names_the_server():
    server, handler = _stub(400)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        remote = RemoteSearchEngine(url, retries=3)
        with pytest.raises(SleuthError, match=f"search server {url} answered 400: stub says 400"):
            remote.search("anything", 3)
        assert handler.hits["/search/batch"] == 1  # asked once: the request's fault
    finally:
        server.shutdown()


def test_a_5xx_server_fails_over_rests_and_is_probed_after_its_cooldown(three, hotpot_bm25):
    servers, _ = three
    server, handler = _stub(503)
    bad = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        remote = RemoteSearchEngine([bad, servers[0].url], protocol="sleuth", cooldown_s=0.5)
        answers = [remote.search(q, 3) for q in QUERIES[:10]]
        assert _ids(answers) == _ids(hotpot_bm25.search_batch(QUERIES[:10], 3))
        assert handler.hits["/search/batch"] == 1  # failed once, then benched
        time.sleep(0.6)  # the cool-down ends: the next request probes /health (503 again) ...
        remote.search(QUERIES[0], 3)
        bad_server = next(s for s in remote.pool.servers if s.url == bad)
        deadline = time.monotonic() + 5
        while "/health answered 503" not in bad_server.last_error:  # ... in the background
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert handler.hits["/health"] == 1 and handler.hits["/search/batch"] == 1
        assert bad_server.down and bad_server.failures == 2  # benched twice as long now
    finally:
        server.shutdown()


def test_all_servers_down_is_one_error_naming_each_url_and_its_failure():
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    started = time.monotonic()
    with pytest.raises(PoolError) as caught:
        RemoteSearchEngine(",".join(urls), retries=2, backoff_s=0.01)
    message = str(caught.value)
    assert message.startswith("all 2 search servers failed after 3 rounds")
    for url in urls:
        assert f"{url}: unreachable: ConnectError" in message
    assert time.monotonic() - started < 5
    # One URL reads as before.
    with pytest.raises(SleuthError, match=f"search server {urls[0]} unreachable"):
        RemoteSearchEngine(urls[0], protocol="sleuth", retries=1).search("x", 1)


def test_servers_that_speak_different_protocols_are_refused_by_name(three):
    servers, _ = three
    searchr1 = f"{servers[1].url}/retrieve"
    with pytest.raises(SleuthError, match="do not all speak one protocol") as caught:
        RemoteSearchEngine(f"{servers[0].url},{servers[1].url}".replace(servers[1].url, searchr1))
    assert f"{servers[0].url} (sleuth)" in str(caught.value)
    assert f"{servers[1].url} (search-r1)" in str(caught.value)
    # Search-R1 endpoint URLs together are one protocol: fine, and balanced too.
    both = RemoteSearchEngine([f"{s.url}/retrieve" for s in servers[:2]])
    assert both.protocol == "search-r1" and len(both.search(QUERIES[0], 3)) == 3


def test_an_address_file_is_reread_and_a_new_server_is_used(three, tmp_path):
    servers, apps = three
    addresses = tmp_path / "servers.txt"
    addresses.write_text(f"# retrieval servers, one a line\n{servers[0].url}\n")
    remote = RemoteSearchEngine(f"@{addresses}")
    assert remote.pool.urls == [servers[0].url]
    before = apps[2].hits["/search/batch"]
    addresses.write_text(f"{servers[0].url}\n{servers[2].url}  # joined later\n")
    time.sleep(0.6)  # the file is looked at twice a second; a new server is probed first
    deadline = time.monotonic() + 5
    while apps[2].hits["/search/batch"] - before < 3:  # the new server takes its share
        assert time.monotonic() < deadline, apps[2].hits
        remote.search(QUERIES[0], 3)
    assert remote.pool.urls == [servers[0].url, servers[2].url]
    addresses.write_text("")  # emptied by mistake: the servers known are kept
    time.sleep(0.6)
    assert remote.search(QUERIES[0], 3) and remote.pool.urls == [servers[0].url, servers[2].url]
    # A path without @ works too; a bad line is named.
    plain = tmp_path / "one.txt"
    plain.write_text(f"{servers[1].url}\n")
    assert RemoteSearchEngine(str(plain)).pool.urls == [servers[1].url]
    addresses.write_text("127.0.0.1:8000\n")
    with pytest.raises(SleuthError, match=r"address file .*'127.0.0.1:8000' is not an http"):
        parse_addresses(f"@{addresses}")
    with pytest.raises(SleuthError, match=r"neither an http\(s\) URL nor an address file"):
        parse_addresses("no-such-file.txt")


def test_a_server_killed_mid_run_loses_no_query(hotpot_bm25_path, hotpot_bm25):
    with ServeProcess(hotpot_bm25_path) as a, ServeProcess(hotpot_bm25_path) as b:
        remote = RemoteSearchEngine(f"{a.url},{b.url}")
        answers: dict[int, list[str]] = {}
        errors: list[str] = []
        done = threading.Event()

        def worker(offset: int) -> None:
            for i in range(offset, 400, 4):
                try:
                    answers[i] = [h.id for h in remote.search(QUERIES[i % 40], 3)]
                except SleuthError as exc:
                    errors.append(str(exc))
            done.set()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        while len(answers) < 60:
            time.sleep(0.005)
        a.proc.send_signal(signal.SIGKILL)  # dies with requests in flight
        killed_at = len(answers)
        for t in threads:
            t.join(timeout=120)
        assert not errors and killed_at < 400
        expected = _ids(hotpot_bm25.search_batch(QUERIES, 3))
        assert [answers[i] for i in range(400)] == [expected[i % 40] for i in range(400)]
        dead = next(s for s in remote.pool.servers if s.url == a.url)
        assert dead.down and "unreachable" in dead.last_error


def test_eval_run_on_two_servers_one_killed_loses_and_duplicates_no_episode(
    hotpot_bm25_path, tmp_path
):
    from sleuth.llm.scripted import ScriptedLLM
    from sleuth.llm.serve_llm import create_llm_app

    n, out = 24, tmp_path / "run"

    class Slow(ScriptedLLM):  # a little model latency so the run outlives the kill
        async def complete(self, messages, config=None, tools=None):
            import asyncio

            await asyncio.sleep(0.03)
            return await super().complete(messages, config, tools)

    llm = Slow(lambda messages: "<answer>unknown</answer>")
    with (
        LiveServer(create_llm_app(llm)) as model,
        ServeProcess(hotpot_bm25_path) as a,
        ServeProcess(hotpot_bm25_path) as b,
    ):
        results = out / "results.jsonl"
        killer_saw: list[int] = []

        def kill_a_when_the_run_is_under_way() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                lines = results.read_text().splitlines() if results.is_file() else []
                if len(lines) >= 8:
                    a.proc.send_signal(signal.SIGKILL)
                    killer_saw.append(len(lines))
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_when_the_run_is_under_way)
        killer.start()
        run = sleuth(
            "eval", "run", "--out", str(out), "--methods", "closed_book,rag", "-n", str(n),
            "--concurrency", "4", "--llm-url", f"{model.url}/v1", "--model", "scripted",
            "--no-report", "--search-url", f"{a.url},{b.url}", timeout=300,
        )  # fmt: skip
        killer.join()
    assert run.returncode == 0, run.stderr
    assert killer_saw and killer_saw[0] < 2 * n, "the server was killed after the run ended"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    per_episode = Counter((r["method"], r["question_id"]) for r in records)
    assert len(per_episode) == 2 * n and set(per_episode.values()) == {1}
    assert not [r for r in records if r.get("error")]
    config = json.loads((out / "config.json").read_text())
    assert json.dumps(config).count(a.url) >= 1  # the run records both servers
