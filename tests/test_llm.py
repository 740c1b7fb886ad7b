"""LLM backends: the real packaged model in-process, and the HTTP backend against real
servers on loopback (``sleuth serve-llm``, and small misbehaving servers for retry paths)."""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from conftest import LiveServer, free_port

from sleuth.errors import LLMError
from sleuth.llm import load_llm
from sleuth.llm.base import GenerationConfig
from sleuth.llm.openai_http import OpenAIChatLLM
from sleuth.llm.serve_llm import create_llm_app
from sleuth.llm.toolcalls import parse_tool_calls

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="session")
def packaged(packaged_llm):
    return packaged_llm


def complete(llm, messages=QUESTION, **config):
    return asyncio.run(llm.complete(messages, GenerationConfig(**config)))


def test_packaged_model_generates_greedily_and_deterministically(packaged):
    first = complete(packaged, max_tokens=12)
    second = complete(packaged, max_tokens=12)
    assert first.text == second.text and "Paris" in first.text
    assert first.usage.prompt_tokens > 10 and 0 < first.usage.completion_tokens <= 12
    assert first.model == "SmolLM2-135M-Instruct" and first.latency_s > 0


def test_stop_strings_and_length_limit(packaged):
    full = complete(packaged, max_tokens=12).text
    cut = complete(packaged, max_tokens=12, stop=["Paris"])
    assert cut.text == full[: full.index("Paris")] and cut.finish_reason == "stop"
    short = complete(packaged, max_tokens=2)
    assert short.finish_reason == "length" and short.usage.completion_tokens == 2


def test_sampling_with_a_seed_is_reproducible(packaged):
    a = complete(packaged, max_tokens=10, temperature=1.0, seed=7)
    b = complete(packaged, max_tokens=10, temperature=1.0, seed=7)
    assert a.text == b.text


def test_concurrent_completions_share_one_model(packaged):
    async def both():
        config = GenerationConfig(max_tokens=6)
        return await asyncio.gather(
            packaged.complete(QUESTION, config), packaged.complete(QUESTION, config)
        )

    first, second = asyncio.run(both())
    assert first.text == second.text


def test_http_backend_against_serve_llm_matches_in_process(packaged):
    with LiveServer(create_llm_app(packaged)) as server:
        remote = OpenAIChatLLM(f"{server.url}/v1", packaged.name)
        over_http = complete(remote, max_tokens=12)
        assert over_http.text == complete(packaged, max_tokens=12).text
        assert over_http.usage.completion_tokens > 0 and over_http.model == packaged.name
        asyncio.run(remote.aclose())
        import httpx

        bad = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": []})
        assert bad.status_code == 400 and "messages is empty" in bad.json()["error"]["message"]
        bad = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": [{"role": "robot", "content": "x"}]},
        )
        assert bad.status_code == 400 and "role" in bad.json()["error"]["message"]
        models = httpx.get(f"{server.url}/v1/models").json()
        assert models["data"][0]["id"] == packaged.name


class Scripted(BaseHTTPRequestHandler):
    """A real HTTP server whose answers follow a script: status codes, garbage, slowness."""

    script: ClassVar[list[str]] = []
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        kind = self.script.pop(0) if self.script else "ok"
        if kind == "slow":
            time.sleep(2)
            kind = "ok"
        if kind == "ok":
            body = {
                "model": "m",
                "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            }
            payload, status = json.dumps(body).encode(), 200
        elif kind == "garbage":
            payload, status = b"<html>not json", 200
        else:
            payload, status = b'{"error": "busy"}', int(kind)
        try:
            self.send_response(status)
            if status == 429:
                self.send_header("retry-after", "0")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out first, as the timeout test intends

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_server():
    Scripted.script, Scripted.hits = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_retries_429_and_5xx_then_succeeds(scripted_server):
    Scripted.script = ["429", "503", "500"]
    llm = OpenAIChatLLM(scripted_server, "m", backoff_s=0.01)
    assert complete(llm).text == "hello"
    assert Scripted.hits == 4


def test_gives_up_after_bounded_retries_with_a_clear_error(scripted_server):
    Scripted.script = ["500"] * 10
    llm = OpenAIChatLLM(scripted_server, "m", max_retries=2, backoff_s=0.01)
    with pytest.raises(LLMError, match="answered 500"):
        complete(llm)
    assert Scripted.hits == 3


def test_wrong_endpoint_garbage_and_timeouts_are_explained(scripted_server):
    Scripted.script = ["404"]
    with pytest.raises(LLMError, match="OpenAI-compatible base URL"):
        complete(OpenAIChatLLM(scripted_server, "m", backoff_s=0.01))
    Scripted.script = ["garbage"]
    with pytest.raises(LLMError, match="non-JSON"):
        complete(OpenAIChatLLM(scripted_server, "m", backoff_s=0.01))
    Scripted.script = ["slow", "slow"]
    with pytest.raises(LLMError, match="timed out 2 times"):
        complete(OpenAIChatLLM(scripted_server, "m", timeout=0.3, max_retries=1, backoff_s=0.01))
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMError, match="cannot reach the LLM"):
        complete(OpenAIChatLLM(closed, "m", max_retries=0))


def test_tool_calls_are_read_from_plain_text():
    text = (
        'I will search. <tool_call>{"name": "search", "arguments": {"query": "a {b}"}}</tool_call>'
    )
    (call,) = parse_tool_calls(text)
    assert (call.name, call.arguments) == ("search", {"query": "a {b}"})
    bare = parse_tool_calls(
        '{"name": "answer", "arguments": "{\\"answer\\": \\"x\\"}"} and {"no": 1}'
    )
    assert [(c.name, c.arguments) for c in bare] == [("answer", {"answer": "x"})]
    assert parse_tool_calls('{"name": "rm", "arguments": {}}', allowed={"search"}) == []
    # xgrammar's JSON strings admit raw control characters (found by the answer-spans property
    # test): such a call is still read, not lost as "no tool call found".
    (call,) = parse_tool_calls('{"name": "search", "arguments": {"query": "a\tb\x03"}}')
    assert call.arguments == {"query": "a\tb\x03"}


def test_llama_backend_is_optional_with_a_clear_message():
    with pytest.raises(LLMError, match=r"pip install 'sleuth\[llama\]'"):
        load_llm("llama:/nonexistent/model.gguf")
