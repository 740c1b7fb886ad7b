"""The retrieval server on a real loopback port, over a real BM25 index of HotpotQA."""

import httpx
import pytest
from conftest import LiveServer

from sleuth.cli.serve import check_binding
from sleuth.corpus import load_qrels, load_queries
from sleuth.errors import SleuthError
from sleuth.search.remote import RemoteSearchEngine
from sleuth.serve.app import create_app

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(hotpot_bm25):
    with LiveServer(create_app(hotpot_bm25, default_topk=3)) as live:
        yield live


@pytest.fixture(scope="module")
def secured(hotpot_bm25):
    with LiveServer(create_app(hotpot_bm25, token=TOKEN)) as live:
        yield live


@pytest.fixture(scope="module")
def question():
    queries, qrels = load_queries("hotpotqa-1100"), load_qrels("hotpotqa-1100")
    qid = next(iter(queries))
    return queries[qid], set(qrels[qid])


def test_search_returns_ranked_hits_with_gold(server, question):
    text, gold = question
    reply = httpx.post(f"{server.url}/search", json={"query": text, "k": 10})
    assert reply.status_code == 200
    hits = reply.json()["hits"]
    assert [h["rank"] for h in hits] == list(range(1, 11))
    assert gold & {h["id"] for h in hits}
    assert set(hits[0]) == {"id", "score", "title", "text", "rank"}


def test_batch_matches_single_searches(server, hotpot_bm25):
    queries = list(load_queries("hotpotqa-1100").values())[:5]
    reply = httpx.post(f"{server.url}/search/batch", json={"queries": queries, "k": 4}).json()
    assert [[h["id"] for h in hits] for hits in reply["results"]] == [
        [h.id for h in hotpot_bm25.search(q, 4)] for q in queries
    ]


def test_retrieve_speaks_the_searchr1_contract(server, hotpot_bm25, question):
    text, _ = question
    plain = httpx.post(f"{server.url}/retrieve", json={"queries": [text, "Tinted Windows"]}).json()
    assert set(plain) == {"result"} and len(plain["result"]) == 2
    assert len(plain["result"][0]) == 3  # topk missing -> the server default (3)
    doc = plain["result"][0][0]
    # Search-R1's agent splits contents into a quoted title line and the text.
    title_line, _, body = doc["contents"].partition("\n")
    expected = hotpot_bm25.search(text, 1)[0]
    assert (title_line, body, doc["id"]) == (f'"{expected.title}"', expected.text, expected.id)

    scored = httpx.post(
        f"{server.url}/retrieve", json={"queries": [text], "topk": 5, "return_scores": True}
    ).json()["result"][0]
    assert len(scored) == 5 and set(scored[0]) == {"document", "score"}
    assert scored[0]["score"] == pytest.approx(expected.score)
    zero = httpx.post(f"{server.url}/retrieve", json={"queries": [text], "topk": 0}).json()
    assert len(zero["result"][0]) == 3  # Search-R1 treats a falsy topk as "use the default"


def test_document_and_health(server, hotpot_bm25):
    doc_id = hotpot_bm25.search("Tinted Windows", 1)[0].id
    doc = httpx.get(f"{server.url}/doc/{doc_id}").json()
    assert doc["id"] == doc_id and doc["contents"].startswith('"Tinted Windows')
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["documents"] == 10_785
    assert health["index"]["corpus"]["documents"] == 10_785
    schema = httpx.get(f"{server.url}/schema/openapi.json").json()
    assert {"/search", "/search/batch", "/retrieve", "/health"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/search", {"query": "", "k": 3}, 400, "query is empty"),
        ("/search", {"query": "   "}, 400, "query is empty"),
        ("/search", {"query": "x" * 5000}, 400, "limit is 4096"),
        ("/search", {"query": "ok", "k": 0}, 400, "out of range"),
        ("/search", {"query": "ok", "k": 5000}, 400, "out of range"),
        ("/search", {"query": 5}, 400, "Expected `str`"),
        ("/search", {"k": 3}, 400, "query"),
        ("/search", ["not", "an", "object"], 400, "Expected `object`"),
        ("/search/batch", {"queries": []}, 400, "queries is empty"),
        ("/search/batch", {"queries": ["ok", ""]}, 400, "queries[1]: query is empty"),
        ("/search/batch", {"queries": ["q"] * 600}, 400, "limit is 512"),
        ("/retrieve", {"queries": "not a list"}, 400, "Expected `array`"),
        ("/retrieve", {"queries": ["ok"], "topk": -2}, 400, "out of range"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(server, path, body, status, message):
    reply = httpx.post(f"{server.url}{path}", json=body)
    assert reply.status_code == status
    assert message in reply.json()["error"]


def test_malformed_json_unknown_doc_and_oversized_body(server):
    broken = httpx.post(
        f"{server.url}/search", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and "truncated" in broken.json()["error"]
    missing = httpx.get(f"{server.url}/doc/no-such-doc")
    assert missing.status_code == 404 and "no-such-doc" in missing.json()["error"]
    huge = httpx.post(f"{server.url}/search", content=b'{"query": "' + b"a" * 2_000_000 + b'"}')
    assert huge.status_code == 413


def test_token_is_required_except_for_health(secured):
    body = {"query": "Tinted Windows"}
    assert httpx.post(f"{secured.url}/search", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{secured.url}/search", json=body, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{secured.url}/search", json=body, headers=right).status_code == 200
    assert httpx.get(f"{secured.url}/health").status_code == 200


def test_non_loopback_binding_requires_a_token():
    with pytest.raises(SleuthError, match=r"refusing to bind 0\.0\.0\.0 without a token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "t")
    check_binding("127.0.0.1", None)
    check_binding("::1", None)


@pytest.mark.parametrize("protocol", ["sleuth", "search-r1"])
def test_remote_engine_matches_in_process_engine(server, hotpot_bm25, protocol):
    remote = RemoteSearchEngine(server.url, protocol=protocol)
    queries = list(load_queries("hotpotqa-1100").values())[:8]
    assert [[h.id for h in hits] for hits in remote.search_batch(queries, 5)] == [
        [h.id for h in hits] for hits in hotpot_bm25.search_batch(queries, 5)
    ]
    hit = remote.search(queries[0], 1)[0]
    assert hit.title and hit.text and hit.rank == 1


def test_remote_engine_detects_protocol_and_fetches_documents(server, secured):
    remote = RemoteSearchEngine(server.url)
    assert remote.protocol == "sleuth" and len(remote) == 10_785
    doc_id = remote.search("Tinted Windows", 1)[0].id
    assert remote.get(doc_id).id == doc_id
    as_searchr1 = RemoteSearchEngine(f"{server.url}/retrieve")
    assert as_searchr1.protocol == "search-r1"
    with pytest.raises(SleuthError, match="cannot fetch a document by id"):
        as_searchr1.get(doc_id)
    authed = RemoteSearchEngine(secured.url, token=TOKEN)
    assert authed.search("Tinted Windows", 2)
    with pytest.raises(SleuthError, match="401"):
        RemoteSearchEngine(secured.url).search("Tinted Windows", 2)


def test_remote_engine_names_an_unreachable_server():
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SleuthError, match=f"search server {url} unreachable"):
        RemoteSearchEngine(url, protocol="sleuth", retries=1).search("x", 1)
