"""Local inference: the OpenVINO backend (int8, continuous batching) against transformers (fp32).

Every figure is a ratio of two measurements taken in the same run on the same machine:
- single-stream decode tokens/s (same prompt, same number of new tokens, greedy);
- 16 concurrent agent episodes on the bundled index (OpenVINO) against the same episodes run
  one after another on transformers, in completion tokens per second;
- ``serve-llm`` on OpenVINO at 8 concurrent clients against 1 client, over real HTTP;
- quality: the first 32 greedy tokens identical (int8 vs fp32) on N question prompts, and the
  agent's valid-action rate, EM and F1 on the same questions for both backends.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant. Answer in detail."},
    {
        "role": "user",
        "content": "Explain how a search engine ranks documents for a query, step by step, "
        "and why term frequency and document length matter.",
    },
]


def _decode_rate(llm: Any, tokens: int, repeats: int) -> float:
    from sleuth.llm.base import GenerationConfig

    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        completion = asyncio.run(llm.complete(PROMPT, GenerationConfig(max_tokens=tokens)))
        rates.append(completion.usage.completion_tokens / (time.perf_counter() - started))
    return statistics.median(rates)


def _episodes(llm: Any, engine: Any, questions: list, concurrent: bool) -> dict[str, float]:
    from sleuth.agent import Agent, AgentConfig
    from sleuth.evaluate.metrics import exact_match, f1_score

    config = AgentConfig(max_turns=4, max_searches=3, max_new_tokens=64, doc_chars=300)
    agent = Agent(llm, engine, config)

    async def run() -> list:
        if concurrent:
            return await asyncio.gather(*(agent.run(q.question) for q in questions))
        return [await agent.run(q.question) for q in questions]

    started = time.perf_counter()
    trajectories = asyncio.run(run())
    seconds = time.perf_counter() - started
    tokens = sum(t.completion_tokens for t in trajectories)
    steps = [s for t in trajectories for s in t.steps if s.model_output or s.action == "invalid"]
    pairs = list(zip(trajectories, questions, strict=True))
    return {
        "episodes": len(trajectories),
        "seconds": round(seconds, 1),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2),
        "valid_action_rate": round(
            sum(s.action != "invalid" for s in steps) / max(1, len(steps)), 4
        ),
        "searches_per_question": round(
            sum(len(t.searches) for t in trajectories) / len(trajectories), 3
        ),
        "em": round(statistics.mean(exact_match(t.answer, q.answers) for t, q in pairs), 4),
        "f1": round(statistics.mean(f1_score(t.answer, q.answers) for t, q in pairs), 4),
    }


def _serve_throughput(llm: Any, clients: int, requests_per_client: int) -> float:
    import httpx

    from sleuth.llm.serve_llm import create_llm_app

    body = {"messages": PROMPT, "max_tokens": 48, "temperature": 0}
    with LiveServer(create_llm_app(llm)) as server:

        async def client(session: httpx.AsyncClient) -> int:
            tokens = 0
            for _ in range(requests_per_client):
                response = await session.post(f"{server.url}/v1/chat/completions", json=body)
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]
            return tokens

        async def run() -> int:
            async with httpx.AsyncClient(timeout=600) as session:
                return sum(await asyncio.gather(*(client(session) for _ in range(clients))))

        started = time.perf_counter()
        tokens = asyncio.run(run())
        return tokens / (time.perf_counter() - started)


def _first_tokens_identical(fast: Any, reference: Any, questions: list, n_tokens: int) -> float:
    from sleuth.llm.base import GenerationConfig

    config = GenerationConfig(max_tokens=n_tokens)
    same = 0
    for q in questions:
        messages = [{"role": "user", "content": q.question}]
        a = asyncio.run(fast.complete(messages, config)).text
        b = asyncio.run(reference.complete(messages, config)).text
        same += a == b
    return same / len(questions)


class LiveServer:
    """uvicorn on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.llm import load_llm
    from sleuth.search import open_index
    from sleuth.search.cache import bundled_index

    openvino = load_llm(backend="openvino")
    transformers = load_llm(backend="transformers")
    engine = open_index(bundled_index("hotpotqa-1100"))
    n_quality = 8 if quick else 50
    n_identical = 20 if quick else 100
    questions = load_benchmark("hotpotqa-1100:test", limit=max(16, n_identical)).questions

    # Warm-up, not measured: first-request kernel compilation, and the action grammars
    # (compiled once per grammar and process by OpenVINO's structured output).
    _decode_rate(openvino, 8, 1)
    _decode_rate(transformers, 8, 1)
    _episodes(openvino, engine, questions[16:18], concurrent=True)

    decode_tokens, repeats = (64, 1) if quick else (150, 3)
    ov_single = _decode_rate(openvino, decode_tokens, repeats)
    tf_single = _decode_rate(transformers, decode_tokens, repeats)

    # The same questions: OpenVINO with 16 episodes in flight, transformers one after another.
    ov_concurrent = _episodes(openvino, engine, questions[:16], concurrent=True)
    tf_sequential = _episodes(transformers, engine, questions[:n_quality], concurrent=False)
    ov_quality = _episodes(openvino, engine, questions[:n_quality], concurrent=True)
    tf_quality = tf_sequential

    serve_1 = _serve_throughput(openvino, 1, 4)
    serve_8 = _serve_throughput(openvino, 8, 4)

    identical = _first_tokens_identical(openvino, transformers, questions[:n_identical], 32)

    result = {
        "model": openvino.name,
        "quick": quick,
        "single_stream_tokens_per_s": {"openvino_int8": ov_single, "transformers_fp32": tf_single},
        "agent_episodes": {
            "openvino_16_concurrent": ov_concurrent,
            "transformers_sequential": tf_sequential,
        },
        "serve_llm_tokens_per_s": {"1_client": serve_1, "8_clients": serve_8},
        "first_32_tokens_identical": {"share": identical, "prompts": n_identical},
        "quality": {
            "questions": n_quality,
            "openvino_int8": ov_quality,
            "transformers_fp32": tf_quality,
        },
    }
    speedup_single = ov_single / tf_single
    speedup_agents = ov_concurrent["tokens_per_s"] / tf_sequential["tokens_per_s"]
    serve_ratio = serve_8 / serve_1
    valid = f"{ov_quality['valid_action_rate']} / {tf_quality['valid_action_rate']}"
    result["summary"] = [
        _row("single-stream decode, openvino / transformers", speedup_single, 4),
        _row("16 concurrent episodes / transformers sequential (tok/s)", speedup_agents, 15),
        _row("serve-llm 8 clients / 1 client (tok/s)", serve_ratio, 4),
        _row("first 32 greedy tokens identical, int8 vs fp32", identical, 0.9),
        {"metric": "valid actions openvino / transformers", "value": valid, "pass": None},
        {
            "metric": "agent F1 openvino / transformers",
            "value": f"{ov_quality['f1']} / {tf_quality['f1']}",
            "pass": None,
        },
    ]
    return result


def _row(metric: str, value: float, target: float) -> dict[str, Any]:
    return {
        "metric": f"{metric} (target >= {target})",
        "value": round(value, 3),
        "pass": value >= target,
    }
