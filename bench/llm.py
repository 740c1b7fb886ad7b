"""Local inference: the OpenVINO backend (fp16 or int8, continuous batching) vs transformers (fp32).

Every figure is a ratio of two measurements taken in the same run on the same machine:
- single-stream decode tokens/s (same prompt, same number of new tokens, greedy);
- 16 concurrent agent episodes on the bundled index (OpenVINO) against the same episodes run
  one after another on transformers, in completion tokens per second;
- ``serve-llm`` on OpenVINO at 8 concurrent clients against 1 client, over real HTTP;
- quality: the first 32 greedy tokens identical (fp16 and int8 vs fp32) on N question prompts, the
  agent's valid-action rate, EM and F1 on the same questions for both backends.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

SECOND_MODEL = "qwen2.5-coder-0.5b"
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


def _episodes(
    llm: Any, engine: Any, questions: list, concurrent: bool, config: Any = None
) -> dict[str, Any]:
    """Agent episodes on ``questions``: speed, valid actions, EM/F1 (with a 95% CI), answers."""
    from sleuth.agent import Agent, AgentConfig
    from sleuth.metrics import exact_match, f1_score

    config = config or AgentConfig(max_turns=4, max_searches=3, max_new_tokens=64, doc_chars=300)
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
    f1s = [f1_score(t.answer, q.answers) for t, q in pairs]
    ems = [exact_match(t.answer, q.answers) for t, q in pairs]
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
        "em": round(statistics.mean(ems), 4),
        "em_ci95": _mean_ci95(ems),
        "f1": round(statistics.mean(f1s), 4),
        "f1_ci95": _mean_ci95(f1s),
        "answers": [t.answer for t in trajectories],
    }


def _mean_ci95(values: list[float]) -> list[float]:
    """Normal-approximation 95% interval of a mean (the quality check's tolerance)."""
    mean = statistics.mean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return [round(mean - half, 4), round(mean + half, 4)]


def _serve_throughput(url: str, clients: int, requests_per_client: int) -> float:
    """Completion tokens per second that ``clients`` concurrent HTTP clients get from ``url``."""
    import httpx

    body = {"messages": PROMPT, "max_tokens": 48, "temperature": 0}

    async def client(session: httpx.AsyncClient) -> int:
        tokens = 0
        for _ in range(requests_per_client):
            response = await session.post(f"{url}/v1/chat/completions", json=body)
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]
        return tokens

    async def run() -> int:
        async with httpx.AsyncClient(timeout=600) as session:
            return sum(await asyncio.gather(*(client(session) for _ in range(clients))))

    started = time.perf_counter()
    tokens = asyncio.run(run())
    return tokens / (time.perf_counter() - started)


def _serve_llm_process(requests_per_client: int) -> tuple[float, float]:
    """``sleuth serve-llm`` as users run it (its own process, the default backend): tokens/s
    for 1 client, then for 8 concurrent clients, against the same server."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "sleuth.cli", "serve-llm", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"sleuth serve-llm exited with {server.returncode}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sleuth serve-llm did not start within 10 minutes")
            time.sleep(0.5)
        _serve_throughput(url, 2, 1)  # warm-up: first-request compilation, not measured
        return (
            _serve_throughput(url, 1, requests_per_client),
            _serve_throughput(url, 8, requests_per_client),
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


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


def _second_model_single_stream(name: str, tokens: int, repeats: int) -> dict[str, Any]:
    """Single-stream decode of a bigger named model on both backends, when it is installed.

    The parts of ``qwen2.5-coder-0.5b`` are an optional install; when they are missing the
    result says so (with the install command) instead of the row silently disappearing.
    """
    from sleuth.errors import SleuthError
    from sleuth.llm import load_llm
    from sleuth.llm.named import install_command

    try:
        fast = load_llm(name, backend="openvino")
        reference = load_llm(name, backend="transformers")
    except SleuthError as exc:
        return {"model": name, "measured": False, "why": str(exc), "install": install_command(name)}
    _decode_rate(fast, 8, 1)
    _decode_rate(reference, 8, 1)
    fast_rate = _decode_rate(fast, tokens, repeats)
    reference_rate = _decode_rate(reference, tokens, repeats)
    return {
        "model": name,
        "measured": True,
        "openvino": round(fast_rate, 2),
        "transformers_fp32": round(reference_rate, 2),
        "ratio": round(fast_rate / reference_rate, 3),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.llm import load_llm
    from sleuth.search import open_index
    from sleuth.search.bundled import bundled_index

    openvino = load_llm(backend="openvino")  # the default: fp16 weights
    openvino_int8 = load_llm(backend="openvino-int8")
    transformers = load_llm(backend="transformers")
    engine = open_index(bundled_index("hotpotqa-1100"))
    n_quality = 8 if quick else 100
    n_identical = 20 if quick else 100
    questions = load_benchmark("hotpotqa-1100:test", limit=max(16, n_identical)).questions

    # Warm-up, not measured: first-request kernel compilation, and the action grammars
    # (compiled once per grammar and process by OpenVINO's structured output).
    for llm in (openvino, openvino_int8, transformers):
        _decode_rate(llm, 8, 1)
    _episodes(openvino, engine, questions[16:18], concurrent=True)

    decode_tokens, repeats = (64, 1) if quick else (150, 3)
    ov_single = _decode_rate(openvino, decode_tokens, repeats)
    int8_single = _decode_rate(openvino_int8, decode_tokens, repeats)
    tf_single = _decode_rate(transformers, decode_tokens, repeats)

    # The same questions: OpenVINO with 16 episodes in flight, transformers one after another.
    ov_concurrent = _episodes(openvino, engine, questions[:16], concurrent=True)
    tf_sequential = _episodes(transformers, engine, questions[:n_quality], concurrent=False)
    ov_quality = _episodes(openvino, engine, questions[:n_quality], concurrent=True)
    tf_quality = tf_sequential

    serve_1, serve_8 = _serve_llm_process(4)

    prompts = questions[:n_identical]
    identical = _first_tokens_identical(openvino, transformers, prompts, 32)
    identical_int8 = _first_tokens_identical(openvino_int8, transformers, prompts, 32)
    del transformers, openvino_int8  # the second model's weights need the memory
    qwen = _second_model_single_stream(SECOND_MODEL, decode_tokens, repeats)

    result = {
        "model": openvino.name,
        "quick": quick,
        "single_stream_tokens_per_s": {
            "openvino_fp16": ov_single,
            "openvino_int8": int8_single,
            "transformers_fp32": tf_single,
        },
        "second_model_single_stream": qwen,
        "agent_episodes": {
            "openvino_16_concurrent": ov_concurrent,
            "transformers_sequential": tf_sequential,
        },
        "serve_llm_tokens_per_s": {"1_client": serve_1, "8_clients": serve_8},
        "first_32_tokens_identical": {
            "prompts": n_identical,
            "openvino_fp16": identical,
            "openvino_int8": identical_int8,
        },
        "quality": {
            "questions": n_quality,
            "openvino_fp16": ov_quality,
            "transformers_fp32": tf_quality,
        },
    }
    speedup_single = ov_single / tf_single
    speedup_agents = ov_concurrent["tokens_per_s"] / tf_sequential["tokens_per_s"]
    serve_ratio = serve_8 / serve_1
    valid = f"{ov_quality['valid_action_rate']} / {tf_quality['valid_action_rate']}"
    low, high = tf_quality["f1_ci95"]
    result["summary"] = [
        _row("single-stream decode, openvino fp16 (default) / transformers", speedup_single, 4),
        _row("single-stream decode, openvino int8 / transformers", int8_single / tf_single, 4),
        _second_model_row(qwen),
        _row("16 concurrent episodes / transformers sequential (tok/s)", speedup_agents, 15),
        _row("serve-llm 8 clients / 1 client (tok/s)", serve_ratio, 4),
        _row("first 32 greedy tokens identical, fp16 (default) vs fp32", identical, 0.9),
        _row("first 32 greedy tokens identical, int8 vs fp32", identical_int8, 0.9),
        {"metric": "valid actions openvino / transformers", "value": valid, "pass": None},
        {
            "metric": f"agent F1 openvino within transformers' 95% CI [{low}, {high}]",
            "value": ov_quality["f1"],
            "pass": low <= ov_quality["f1"] <= high,
        },
    ]
    return result


def _second_model_row(result: dict[str, Any]) -> dict[str, Any]:
    metric = f"single-stream decode {result['model']}, openvino / transformers"
    if not result["measured"]:
        return {"metric": f"{metric} (target >= 4)", "value": "not installed", "pass": None}
    return _row(metric, result["ratio"], 4)


def _row(metric: str, value: float, target: float) -> dict[str, Any]:
    return {
        "metric": f"{metric} (target >= {target})",
        "value": round(value, 3),
        "pass": value >= target,
    }
