"""serve-llm under clients that leave, crowd in or send odd fields (issue 33 items 8 and 9):
a real uvicorn server on loopback in front of the real packaged SmolLM2-135M (OpenVINO)."""

import asyncio
import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import LiveServer

from sleuth.errors import LLMError
from sleuth.llm.base import GenerationConfig
from sleuth.llm.scripted import ScriptedLLM
from sleuth.llm.serve_llm import create_llm_app

# SmolLM2 writes this to max_tokens without an end-of-text token (measured: 1,500 of 1,500).
LONG = [
    {
        "role": "user",
        "content": "Write the numbers from 1 to 3000 in words, one per line, without stopping.",
    }
]
SHORT = [{"role": "user", "content": "What is the capital of France?"}]


def health(live: LiveServer) -> dict:
    return httpx.get(f"{live.url}/health", timeout=30).json()


def wait_until(live: LiveServer, check, timeout: float = 10.0) -> dict:
    """Poll /health until ``check(report)`` holds; the last report either way."""
    deadline = time.monotonic() + timeout
    report = health(live)
    while not check(report) and time.monotonic() < deadline:
        time.sleep(0.1)
        report = health(live)
    return report


def read_chunks(lines: Iterator[str], count: int) -> list[dict]:
    """The next ``count`` content chunks of an SSE stream (the role chunk skipped). Pass one
    ``iter_lines()`` iterator and keep it: closing it closes the connection."""
    chunks: list[dict] = []
    for line in lines:
        if line.startswith("data: {"):
            chunk = json.loads(line[6:])
            if chunk["choices"][0]["delta"].get("content"):
                chunks.append(chunk)
                if len(chunks) >= count:
                    break
    return chunks


@pytest.fixture(scope="module")
def live(packaged_llm):
    with LiveServer(create_llm_app(packaged_llm, max_concurrency=1, max_queued=1)) as server:
        yield server


def stream(client: httpx.Client, live: LiveServer, max_tokens: int = 3000):
    body = {"messages": LONG, "max_tokens": max_tokens, "stream": True}
    return client.stream("POST", f"{live.url}/v1/chat/completions", json=body, timeout=60)


def test_a_stream_whose_client_left_stops_decoding(live, packaged_llm):
    """A 3,000-token stream read for 5 chunks then dropped: the engine stops it within seconds
    (before the fix it decoded all 3,000 tokens for no one, a core busy for half a minute)."""
    before = health(live)
    with httpx.Client() as client, stream(client, live) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert len(read_chunks(lines, 5)) == 5
        assert health(live)["engine"]["running"] == 1
        assert len(read_chunks(lines, 5)) == 5  # still decoding for the client
    report = wait_until(live, lambda r: r["engine"]["running"] == 0)
    assert report["engine"]["running"] == 0, report
    assert report["engine"]["abandoned"] == before["engine"]["abandoned"] + 1
    assert report["requests"]["abandoned"] == before["requests"]["abandoned"] + 1
    assert report["requests"]["active"] == 0
    tokens = report["engine"]["generated_tokens"]
    time.sleep(1.0)
    assert health(live)["engine"]["generated_tokens"] == tokens  # nothing decodes any more
    assert tokens - before["engine"]["generated_tokens"] < 1500  # far from the 3,000 asked
    assert not packaged_llm._pipe.has_non_finished_requests()  # the sequence was freed
    short = {"messages": SHORT, "max_tokens": 4}
    answer = httpx.post(f"{live.url}/v1/chat/completions", json=short, timeout=60)
    assert answer.status_code == 200  # the worker carries on


def test_a_plain_request_whose_client_left_stops_decoding(live):
    """uvicorn does not cancel a handler whose client left: the server watches for it."""
    before = health(live)
    body = {"messages": LONG, "max_tokens": 3000}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after a second and closes
        httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=1))
    report = wait_until(
        live, lambda r: r["requests"]["abandoned"] > before["requests"]["abandoned"]
    )
    assert report["requests"]["abandoned"] == before["requests"]["abandoned"] + 1, report
    report = wait_until(live, lambda r: r["engine"]["running"] == 0)
    assert report["engine"]["running"] == 0 and report["requests"]["active"] == 0
    assert report["engine"]["generated_tokens"] - before["engine"]["generated_tokens"] < 1500


def test_beyond_max_queued_the_server_answers_503_with_retry_after(live):
    """One request decoding (max_concurrency 1), one waiting (max_queued 1): a third is a 503
    naming the limit, with Retry-After; the waiting one leaving is counted and nothing stays."""
    before = health(live)
    with httpx.Client() as client_a, httpx.Client() as client_b, stream(client_a, live) as first:
        lines = first.iter_lines()
        assert len(read_chunks(lines, 1)) == 1
        with stream(client_b, live) as second:
            assert second.status_code == 200
            report = wait_until(live, lambda r: r["requests"]["queued"] == 1)
            assert report["requests"]["active"] == 1 and report["requests"]["queued"] == 1
            body = {"messages": SHORT, "max_tokens": 4}
            busy = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert "--max-queued 1" in busy.json()["error"]["message"]
            assert len(read_chunks(lines, 1)) == 1  # the first one still streams
    report = wait_until(
        live, lambda r: r["requests"]["active"] == 0 and r["engine"]["running"] == 0
    )
    assert report["requests"]["queued"] == 0 and report["requests"]["active"] == 0, report
    assert report["requests"]["rejected"] == before["requests"]["rejected"] + 1
    assert report["requests"]["abandoned"] == before["requests"]["abandoned"] + 2


def test_a_cancelled_complete_does_not_kill_the_batching_worker(packaged_llm):
    """A caller cancelled while its request decodes: the worker used to set the result of the
    cancelled future when the request ended, died of InvalidStateError, and every later
    request hung. Now the request is stopped, counted as abandoned, and the worker lives."""
    abandoned = packaged_llm.abandoned

    async def cancel_then_ask():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                packaged_llm.complete(LONG, GenerationConfig(max_tokens=150)), timeout=0.3
            )
        deadline = time.monotonic() + 20
        while packaged_llm.running and time.monotonic() < deadline:  # the request has ended
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        return await asyncio.wait_for(
            packaged_llm.complete(SHORT, GenerationConfig(max_tokens=4)), timeout=30
        )

    assert asyncio.run(cancel_then_ask()).text
    assert packaged_llm._worker.is_alive()
    assert packaged_llm.abandoned == abandoned + 1


def test_a_cancelled_request_stops_the_transformers_backend_too():
    """transformers generates in a thread behind a lock: a cancelled caller's generation used
    to run on to max_tokens holding the lock, so the next request waited for all of it."""
    from sleuth.llm import load_llm

    llm = load_llm(backend="transformers")

    async def cancel_then_ask():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                llm.complete(LONG, GenerationConfig(max_tokens=400)), timeout=1.0
            )
        freed = await asyncio.to_thread(llm._lock.acquire, True, 3.0)  # within a few tokens
        if freed:
            llm._lock.release()
        return freed, await llm.complete(SHORT, GenerationConfig(max_tokens=4))

    freed, answer = asyncio.run(cancel_then_ask())
    assert freed and answer.text


# -- item 9: fields that were 500s ------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(packaged_llm):
    """The server as ``sleuth serve-llm`` starts it, with its default limits."""
    with LiveServer(create_llm_app(packaged_llm)) as server:
        yield server


def post(live: LiveServer, **body) -> httpx.Response:
    body.setdefault("messages", SHORT)
    body.setdefault("max_tokens", 4)
    return httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=120)


def sse_events(live: LiveServer, **body) -> list[str]:
    body = {"messages": SHORT, "max_tokens": 4, "stream": True, **body}
    url = f"{live.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=120) as response:
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"seed": 2**70}, "seed must be in 0.."),
        ({"seed": -2}, "seed must be in 0.."),
        ({"structured_outputs": {"regex": ""}}, "structured_outputs.regex is empty"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
        ({"max_tokens": 0}, "max_tokens must be in 1.."),
        ({"max_completion_tokens": 0}, "max_tokens must be in 1.."),
    ],
)
def test_bad_fields_are_400s_naming_the_field(plain, fields, named):
    response = post(plain, **fields)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]["message"]


def test_seed_minus_one_means_no_seed_in_plain_and_streamed_requests(plain):
    """What several clients send for "random": once a 500, and a stream cut after its role
    chunk with neither an error event nor ``[DONE]``."""
    response = post(plain, seed=-1)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    events = sse_events(plain, seed=-1)
    assert events[-1] == "[DONE]" and not any('"error"' in e for e in events)
    assert post(plain, seed=2**63 - 1).status_code == 200


class _Breaking(ScriptedLLM):
    """A model whose stream breaks after one piece, or whose completion raises."""

    def __init__(self, error: Exception) -> None:
        super().__init__(["unused"])
        self.error = error

    async def complete(self, messages, config=None, tools=None):
        raise self.error

    async def stream(self, messages, config=None):
        yield "Par"
        raise self.error


@pytest.fixture
def error_lines():
    """What ``sleuth.serve.error`` logs, whatever else configured logging in this process."""
    lines: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = lines.append  # type: ignore[method-assign]
    logger = logging.getLogger("sleuth.serve.error")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_an_unexpected_error_is_logged_with_its_traceback_and_ends_a_stream_cleanly(error_lines):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with LiveServer(create_llm_app(_Breaking(RuntimeError("boom \x1b]0;owned\x07")))) as live:
        plain = post(live)
        assert plain.status_code == 500 and "traceback" in plain.json()["error"]["message"]
        assert "boom" not in plain.text  # internals stay in the log
        events = sse_events(live)
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "Par"
    assert "error" in json.loads(events[-2]) and events[-1] == "[DONE]"
    assert len(error_lines) == 2 and all(r.exc_info for r in error_lines)
    assert "boom" in str(error_lines[1].exc_info[1])
    assert (list(root.handlers), root.level) == (handlers, level)  # logging left alone


def test_a_backend_error_in_a_stream_is_an_error_event_then_done():
    with LiveServer(create_llm_app(_Breaking(LLMError("the engine failed")))) as live:
        events = sse_events(live)
        assert post(live).status_code == 502
    assert json.loads(events[-2])["error"]["message"] == "the engine failed"
    assert events[-1] == "[DONE]"


def test_the_error_log_strips_terminal_sequences_from_tracebacks():
    from sleuth.serve.access_log import SafeFormatter

    try:
        raise RuntimeError("boom \x1b]0;owned\x07\x1b[2J")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, "f", 1, "failed", None, (type(exc), exc, None)
        )
    text = SafeFormatter("%(message)s").format(record)
    assert "boom" in text and "\x1b" not in text and "\x07" not in text
