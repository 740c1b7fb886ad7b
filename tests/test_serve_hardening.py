"""Issue 13, server items, each against a real server on loopback (``sleuth serve`` as a child
process unless said otherwise): work bounds on batch requests (item 4), ids with ``/``, space,
``?``, ``#`` (item 5), malformed bodies and the access log (item 6), and the server's start-up,
docs page, token and strict validation (item 10)."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import LiveServer
from serve_process import ServeProcess, sleuth

from sleuth.agent import Agent, AgentConfig
from sleuth.corpus import load_documents, load_queries
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search import build_index
from sleuth.search.remote import RemoteSearchEngine
from sleuth.serve.app import create_app
from sleuth.types import Document

HOTPOT_TEST = Path(__file__).resolve().parents[1] / "src/sleuth/data/hotpotqa_dev_1100/test.jsonl"
ASHLAND = (
    "Ashland/63rd station"  # a bundled HotpotQA title (the hotpotqa format uses titles as ids)
)
TRICKY_IDS = [
    "a b",
    "what?",
    "c#sharp",
    "100% sure",
    "a//b",
    "trailing/",
    "/leading",
    "x/../y",
    "..",
    ".",
    "ü/é ☃",
    "%2F",
    "a+b&c=d",
    "back\\slash",
]


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return list(load_queries("hotpotqa-1100").values())


# -- item 4: bounded work per request -------------------------------------------------------


@pytest.fixture(scope="module")
def hits_capped(hotpot_bm25_path):
    with ServeProcess(hotpot_bm25_path, "--max-batch-hits", "5000", "--quiet") as server:
        yield server


@pytest.fixture(scope="module")
def bytes_and_time_capped(hotpot_bm25_path):
    args = ("--max-response-bytes", "100000", "--request-timeout", "0.05", "--quiet")
    with ServeProcess(hotpot_bm25_path, *args) as server:
        yield server


def test_a_batch_asking_for_too_many_hits_is_refused_at_once(hits_capped, questions):
    """The amplification of the issue: 512 queries x k=1000 under the 1 MB body limit produced
    a 66 MB answer after two minutes; now it is a 413 naming the limit before any search."""
    body = {"queries": questions[:512], "k": 1000}
    started = time.monotonic()
    reply = httpx.post(f"{hits_capped.url}/search/batch", json=body, timeout=20)
    assert reply.status_code == 413, reply.text[:300]
    error = reply.json()["error"]
    assert "512,000 hits" in error and "5,000" in error and "--max-batch-hits" in error
    assert time.monotonic() - started < 5
    retrieve = httpx.post(
        f"{hits_capped.url}/retrieve", json={"queries": questions[:10], "topk": 501}, timeout=20
    )
    assert retrieve.status_code == 413 and "--max-batch-hits" in retrieve.json()["error"]
    assert httpx.get(f"{hits_capped.url}/health").json()["limits"]["max_batch_hits"] == 5000


def test_the_remote_client_splits_batches_to_the_servers_limit(hits_capped, hotpot_bm25, questions):
    remote = RemoteSearchEngine(hits_capped.url)
    queries = questions[:120]  # 120 x 50 = 6,000 hits: more than the server answers at once
    got = remote.search_batch(queries, 50)
    expected = hotpot_bm25.search_batch(queries, 50)
    assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in expected]


def test_a_response_over_the_byte_limit_is_refused(bytes_and_time_capped, questions):
    url = bytes_and_time_capped.url
    reply = httpx.post(f"{url}/search/batch", json={"queries": questions[:10], "k": 100})
    assert reply.status_code == 413
    error = reply.json()["error"]
    assert "--max-response-bytes" in error and "100,000 bytes" in error
    small = httpx.post(f"{url}/search", json={"query": questions[0], "k": 3})
    assert small.status_code == 200 and len(small.json()["hits"]) == 3


def test_a_request_over_the_time_limit_is_stopped(bytes_and_time_capped, questions):
    """512 long queries (each a question repeated) under every other limit: the search stops at
    the first chunk boundary after 0.05 s instead of running to the end."""
    long_queries = [" ".join([q] * 12)[:4000] for q in questions[:512]]
    reply = httpx.post(
        f"{bytes_and_time_capped.url}/search/batch",
        json={"queries": long_queries, "k": 1},
        timeout=60,
    )
    assert reply.status_code == 413, reply.text[:300]
    assert "--request-timeout" in reply.json()["error"]


def test_limits_must_be_positive(hotpot_bm25_path):
    done = sleuth("serve", str(hotpot_bm25_path), "--port", "0", "--max-batch-hits", "0")
    assert done.returncode == 2 and "--max-batch-hits must be positive" in done.stderr
    assert "Traceback" not in done.stderr


# -- item 5: ids with /, space, ?, # ---------------------------------------------------------


@pytest.fixture(scope="module")
def titles_index(tmp_path_factory) -> Path:
    docs = list(load_documents(str(HOTPOT_TEST), format="hotpotqa"))
    assert ASHLAND in {d.id for d in docs}
    extra = [
        Document(id=i, title=f"tricky {n}", text=f"odd id {n}") for n, i in enumerate(TRICKY_IDS)
    ]
    out = tmp_path_factory.mktemp("titles") / "index"
    return build_index(docs + extra, out, source=str(HOTPOT_TEST))


@pytest.fixture(scope="module")
def titles_server(titles_index):
    with ServeProcess(titles_index) as server:
        yield server


@pytest.mark.parametrize("doc_id", [ASHLAND, *TRICKY_IDS])
def test_any_id_can_be_fetched_by_path_and_by_query(titles_server, doc_id):
    by_path = httpx.get(f"{titles_server.url}/doc/{quote(doc_id, safe='')}")
    if doc_id in (".", ".."):  # httpx would resolve a bare dot segment: encode the dots too
        by_path = httpx.get(f"{titles_server.url}/doc/{doc_id.replace('.', '%2E')}")
    assert by_path.status_code == 200, by_path.text
    assert by_path.json()["id"] == doc_id
    by_query = httpx.get(f"{titles_server.url}/doc", params={"id": doc_id})
    assert by_query.status_code == 200 and by_query.json()["id"] == doc_id


def test_plain_ids_keep_working_and_unknown_ids_are_404(titles_server):
    plain = httpx.get(f"{titles_server.url}/doc/Denise Levertov")  # httpx encodes the space
    assert plain.status_code == 200 and plain.json()["title"] == "Denise Levertov"
    missing = httpx.get(f"{titles_server.url}/doc/{quote('no/such doc', safe='')}")
    assert missing.status_code == 404 and "'no/such doc'" in missing.json()["error"]
    not_utf8 = httpx.get(f"{titles_server.url}/doc/%FF%FE")
    assert not_utf8.status_code == 400 and "not valid UTF-8" in not_utf8.json()["error"]


def test_the_remote_client_and_the_agents_open_reach_slash_ids(titles_server):
    remote = RemoteSearchEngine(titles_server.url)
    for doc_id in [ASHLAND, *TRICKY_IDS]:
        assert remote.get(doc_id).id == doc_id
    # The agent's open over a search URL, as `sleuth ask --search-url` runs it.
    llm = ScriptedLLM([f"<open>{ASHLAND}</open>", "<answer>West Englewood</answer>"])
    agent = Agent(llm, remote, AgentConfig(actions=("search", "open", "answer")))
    trajectory = asyncio.run(agent.run("Where is Ashland/63rd station?", episode_id="e1"))
    opened = trajectory.steps[0]
    assert opened.action == "open" and not opened.error, opened.error
    assert opened.observation.startswith(f"(id: {ASHLAND}) {ASHLAND}")
    assert "West Englewood" in opened.observation


# -- item 6: malformed bodies are 4xx; the access log ---------------------------------------

INVALID_UTF8 = {
    "/search": b'{"query": "\xff\xfe", "k": 1}',
    "/search/batch": b'{"queries": ["ok", "\xc3("], "k": 1}',
    "/retrieve": b'{"queries": ["\xed\xa0\x80"], "topk": 1}',
}


def _raw_post(url: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request written byte for byte on a socket (no client library re-encoding)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", list(INVALID_UTF8))
def test_invalid_utf8_inside_json_is_a_400_on_every_route(titles_server, path):
    raw = INVALID_UTF8[path]
    status, body = _raw_post(titles_server.url, path, raw)
    assert status == 400, body
    offset = _first_bad_byte(raw)
    # docs/reliability.md promises the byte, its offset and one prefix on every route
    expected = f"invalid request body: the body is not valid UTF-8 (byte 0x{raw[offset]:02x} "
    assert (expected + f"at offset {offset})").encode() in body, body


def _first_bad_byte(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    raise AssertionError(f"{raw!r} is valid UTF-8")


def test_every_request_gets_one_access_line(titles_server):
    httpx.post(f"{titles_server.url}/search", json={"query": "Ashland", "k": 2})
    httpx.get(f"{titles_server.url}/doc/{quote('no/such doc', safe='')}")
    _raw_post(titles_server.url, "/search", b"\x1b[31m")
    titles_server.wait_for_line(r"127\.0\.0\.1 POST /search 200 \d+\.\dms$")
    titles_server.wait_for_line(r"GET /doc/no%2Fsuch%20doc 404 \d+\.\dms$")
    titles_server.wait_for_line(r"POST /search 400 ")
    assert "\x1b" not in titles_server.stderr  # nothing a client sends reaches the log raw


def test_quiet_turns_the_access_log_off(titles_index):
    with ServeProcess(titles_index, "--quiet") as server:
        assert httpx.post(f"{server.url}/search", json={"query": "Ashland"}).status_code == 200
        time.sleep(0.3)
        assert not re.search(r"POST /search \d{3}", server.stderr), server.stderr


def test_an_unexpected_error_is_a_500_with_its_traceback_in_the_log(hotpot_bm25, caplog):
    """A bug inside an engine (here a real engine whose ``get`` is broken): the client gets a
    500 without internals, the server log gets the traceback."""

    class BrokenGet:
        name, manifest = "bm25", {}

        def __len__(self) -> int:
            return len(hotpot_bm25)

        def search_batch(self, queries, k):
            return hotpot_bm25.search_batch(queries, k)

        def get(self, doc_id):
            return {"not": "a document"}[doc_id]

    with (
        caplog.at_level(logging.ERROR, logger="sleuth.serve.error"),
        LiveServer(create_app(BrokenGet())) as live,
    ):
        reply = httpx.get(f"{live.url}/doc/doc1")
        ok = httpx.post(f"{live.url}/search", json={"query": "Tinted Windows", "k": 1})
    assert reply.status_code == 500 and "server's log" in reply.json()["error"]
    assert "KeyError" not in reply.text
    assert ok.status_code == 200
    logged = [r for r in caplog.records if r.name == "sleuth.serve.error"]
    assert logged and logged[0].exc_info and logged[0].exc_info[0] is KeyError
    assert "GET /doc/doc1" in logged[0].getMessage()


# -- item 10: start-up, docs page, token, strict validation ---------------------------------


def test_a_taken_port_is_a_clear_error_and_no_banner(hotpot_bm25_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = sleuth("serve", str(hotpot_bm25_path), "--port", str(port))
    assert done.returncode == 2
    assert f"cannot bind 127.0.0.1:{port}" in done.stderr and "choose another --port" in done.stderr
    assert "serving" not in done.stderr and "Traceback" not in done.stderr


def test_an_impossible_port_is_a_clear_error(hotpot_bm25_path):
    done = sleuth("serve", str(hotpot_bm25_path), "--port", "99999")
    assert done.returncode == 2 and "--port 99999 is not a TCP port" in done.stderr
    assert "Traceback" not in done.stderr and "serving" not in done.stderr


TOKEN = "s3cret"


@pytest.fixture(scope="module")
def secured(hotpot_bm25):
    with LiveServer(create_app(hotpot_bm25, token=TOKEN, access_log=False)) as live:
        yield live


def test_the_docs_page_is_self_contained_and_everything_but_health_needs_the_token(secured):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/schema", "/schema/openapi.json", "/doc/doc1", "/schema/swagger"):
        assert httpx.get(f"{secured.url}{path}").status_code == 401, path
    assert httpx.get(f"{secured.url}/health").status_code == 200
    page = httpx.get(f"{secured.url}/schema", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Offline means no reference to anything outside this server: no URL with a scheme.
    assert not re.search(r"(https?:)?//[a-z]", page.text, re.IGNORECASE), page.text[:500]
    assert "<script" not in page.text
    for operation in (
        "/search/batch",
        "/retrieve",
        "/doc/{doc_id}",
        "/health",
        "BatchSearchRequest",
    ):
        assert operation in page.text
    schema = httpx.get(f"{secured.url}/schema/openapi.json", headers=auth).json()
    assert {"/search", "/search/batch", "/retrieve", "/doc", "/health"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/search", {"query": "Tinted Windows", "k": "2"}, "Expected `int`, got `str` - at `$.k`"),
        ("/search", {"query": "Tinted Windows", "k": 2.0}, "Expected `int`, got `float`"),
        ("/search", {"query": "Tinted Windows", "k": True}, "Expected `int`, got `bool`"),
        ("/search/batch", {"queries": ["ok", 3]}, "Expected `str`, got `int` - at `$.queries[1]`"),
        ("/retrieve", {"queries": ["ok"], "topk": "3"}, "got `str` - at `$.topk`"),
        ("/search", {"query": "x", "zz": 1}, "unknown field `zz`"),
    ],
)
def test_validation_is_strict_and_reads_as_text(secured, path, body, message):
    reply = httpx.post(
        f"{secured.url}{path}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert message in error
    assert "{'" not in error and "'message'" not in error  # no Python repr of an error list


def test_a_valid_request_still_works_everywhere(secured, hotpot_bm25):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    hits = httpx.post(
        f"{secured.url}/search", json={"query": "Tinted Windows", "k": 2}, headers=auth
    ).json()["hits"]
    assert [h["id"] for h in hits] == [h.id for h in hotpot_bm25.search("Tinted Windows", 2)]


# -- issue 33, round 2: rebinding and cross-origin (4), token first (6), busy ports (13), the
# access log's client (5) --------------------------------------------------------------------


def _raw(url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """A request written byte for byte (``head`` without the Host line, Connection or length)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    data = f"{head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(data)
        response = b"".join(iter(lambda: sock.recv(65536), b""))
    return int(response.split(b" ", 2)[1]), response.partition(b"\r\n\r\n")[2]


def _llm_app(**kwargs):
    from sleuth.llm.serve_llm import create_llm_app

    return create_llm_app(ScriptedLLM(["<answer>Paris</answer>"] * 8), **kwargs)


CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.mark.parametrize("server", ["serve", "serve-llm"])
def test_a_foreign_host_origin_or_content_type_is_refused(hotpot_bm25, server):
    """A DNS-rebinding page (its own name in Host) gets a 421, a foreign Origin a 403, a
    cross-origin "simple" POST (text/plain, a form, no type) a 415; loopback clients that send
    JSON, with or without their own Origin, get through."""
    app = create_app(hotpot_bm25) if server == "serve" else _llm_app()
    path, body = (
        ("/search", {"query": "Tinted Windows", "k": 1})
        if server == "serve"
        else ("/v1/chat/completions", CHAT)
    )
    with LiveServer(app) as live:
        url = live.url + path
        assert httpx.post(url, json=body).status_code == 200
        own = {"Origin": f"http://localhost:{live.port}"}
        assert httpx.post(url, json=body, headers=own).status_code == 200
        for host in ("evil.example", f"rebind.evil.example:{live.port}", "127.0.0.1.evil.example"):
            reply = httpx.post(url, json=body, headers={"Host": host})
            assert reply.status_code == 421, (host, reply.text)
        assert httpx.get(live.url + "/health", headers={"Host": "evil.example"}).status_code == 421
        for origin in ("http://evil.example", "null", f"http://evil.example:{live.port}"):
            assert httpx.post(url, json=body, headers={"Origin": origin}).status_code == 403
        raw = msgspec_json(body)
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            assert httpx.post(url, content=raw, headers={"Content-Type": kind}).status_code == 415
        status, answer = _raw(live.url, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1", raw)
        assert status == 415 and b"application/json" in answer  # a body with no type at all
        typed = {"Content-Type": "application/json; charset=utf-8"}
        assert httpx.post(url, content=raw, headers=typed).status_code == 200


def msgspec_json(body: dict) -> bytes:
    import json

    return json.dumps(body).encode()


def test_the_host_allow_list_takes_the_bound_address_and_named_hosts():
    from sleuth.http_guard import HostAllowList, host_name

    default = HostAllowList.for_bind("127.0.0.1")
    assert all(default.allows(host_name(h)) for h in ("localhost:80", "[::1]:9", "127.0.0.1"))
    assert not default.allows(host_name("evil.example")) and not default.allows(host_name(""))
    assert not default.allows(host_name("127.0.0.1@evil.example"))
    named = HostAllowList.for_bind("127.0.0.2", ["search.internal"])
    assert named.allows("127.0.0.2") and named.allows("search.internal")
    wildcard = HostAllowList.for_bind("0.0.0.0")
    assert wildcard.allows("10.1.2.3") and not wildcard.allows("evil.example")
    assert not default.origin_allowed("null") and default.origin_allowed("https://localhost:1")


def test_serve_answers_the_names_it_is_told(titles_index):
    with ServeProcess(titles_index, "--allow-host", "search.internal") as server:
        named = {"Host": "search.internal:8000"}
        assert httpx.get(f"{server.url}/health", headers=named).status_code == 200
        reply = httpx.get(f"{server.url}/health", headers={"Host": "evil.example"})
        assert reply.status_code == 421 and "Host evil.example" in reply.json()["error"]


def test_serve_llm_checks_the_token_before_the_body():
    """An unauthenticated client learns nothing from validation: 401 whatever the body."""
    with LiveServer(_llm_app(token="s3cret")) as live:
        url = f"{live.url}/v1/chat/completions"
        for body in ({}, {"messages": []}, {"messages": "x", "n": 5}, CHAT):
            assert httpx.post(url, json=body).status_code == 401, body
        status, _ = _raw(
            live.url,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json",
            b"{not json",
        )
        assert status == 401
        assert httpx.get(f"{live.url}/v1/models").status_code == 401
        assert httpx.get(f"{live.url}/health").status_code == 200
        authed = {"Authorization": "Bearer s3cret"}
        assert httpx.post(url, json={"messages": []}, headers=authed).status_code == 400


@pytest.mark.parametrize("command", ["serve-llm", "mcp", "view"])
def test_every_server_binds_before_it_says_it_is_serving(hotpot_bm25_path, tmp_path, command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        args = {
            "serve-llm": ["serve-llm", "--port", port],
            "mcp": ["mcp", str(hotpot_bm25_path), "--transport", "http", "--port", port],
            "view": ["view", str(tmp_path), "--port", port],
        }[command]
        done = sleuth(*args)
    assert done.returncode == 2, done.stderr
    assert f"cannot bind 127.0.0.1:{port}" in done.stderr and "choose another --port" in done.stderr
    assert "Traceback" not in done.stderr
    assert not re.search(r"serving|MCP server|open http|loading model", done.stderr)


def test_view_and_mcp_have_different_default_ports():
    import inspect

    from sleuth.cli.mcp import mcp_command
    from sleuth.cli.view import view_command

    def default(function):
        return inspect.signature(function).parameters["port"].default

    assert default(view_command) != default(mcp_command)


def _raw_get(url: str, extra: str) -> int:
    host = url.removeprefix("http://")
    return _raw(url, f"GET /health?probe HTTP/1.1\r\nHost: {host}\r\n{extra}")[0]


def test_the_access_log_trusts_no_forwarded_header_unless_asked(titles_index):
    """By default the logged client is the socket's peer, whatever X-Forwarded-For says; with
    --forwarded-allow-ips the proxy's header is used, escaped like every logged field."""
    with ServeProcess(titles_index) as server:
        assert _raw_get(server.url, "X-Forwarded-For: 203.0.113.9") == 200
        line = server.wait_for_line(r"GET /health\?probe 200")
        assert "203.0.113.9" not in line and "127.0.0.1 GET /health?probe" in line
    with ServeProcess(titles_index, "--forwarded-allow-ips", "127.0.0.1") as server:
        assert _raw_get(server.url, "X-Forwarded-For: evil\x1b[31m\x07") == 200
        line = server.wait_for_line(r"GET /health\?probe 200")
        assert "\x1b" not in server.stderr and "\x07" not in server.stderr
        assert "evil\\x1b[31m\\x07 GET /health?probe" in line
