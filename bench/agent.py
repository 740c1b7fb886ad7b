"""Agent-loop costs: framework overhead per turn (zero-latency scripted LLM), the share of wall
time spent outside a real LLM, and the speed-up of concurrent episodes against one shared
``sleuth serve-llm``.

Target: < 2% of wall time outside the LLM with the real packaged model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.common import REPO
from sleuth.agent import Agent, AgentConfig
from sleuth.corpus import load_queries
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search import open_index
from sleuth.search.bundled import bundled_index


def _questions(n: int) -> list[str]:
    return list(load_queries("hotpotqa-1100").values())[:n]


def overhead(engine, episodes: int, turns: int) -> dict[str, float]:
    """Each episode searches ``turns - 1`` times, then answers; the LLM costs nothing."""

    def policy(messages):
        done = sum(1 for m in messages if m["role"] == "assistant")
        return (
            "<answer>x</answer>"
            if done >= turns - 1
            else f"<search>{messages[1]['content']} {done}</search>"
        )

    agent = Agent(ScriptedLLM(policy), engine, AgentConfig(max_turns=turns + 1, max_searches=turns))
    questions = _questions(episodes)

    async def main():
        return [await agent.run(q) for q in questions]

    started = time.perf_counter()
    trajectories = asyncio.run(main())
    elapsed = time.perf_counter() - started
    steps = sum(len(t.steps) for t in trajectories)
    search_s = sum(s.tool_seconds for t in trajectories for s in t.steps if s.action == "search")
    return {
        "episodes": episodes,
        "turns": steps,
        "episodes_per_s": round(episodes / elapsed, 1),
        "us_per_turn": round(elapsed / steps * 1e6, 1),
        "us_per_turn_excluding_search": round((elapsed - search_s) / steps * 1e6, 1),
    }


def real_model_share(engine, episodes: int) -> dict[str, float]:
    from sleuth.llm import load_llm

    llm = load_llm()
    config = AgentConfig(max_turns=3, max_new_tokens=48, untagged_answer=True)
    agent = Agent(llm, engine, config)
    wall = llm_s = 0.0
    for question in _questions(episodes):
        traj = asyncio.run(agent.run(question))
        wall += traj.seconds
        llm_s += sum(s.llm_seconds for s in traj.steps)
    outside = (wall - llm_s) / wall
    return {
        "episodes": episodes,
        "wall_s": round(wall, 2),
        "llm_s": round(llm_s, 2),
        "share_outside_llm": round(outside, 4),
    }


def concurrency_speedup(engine, episodes: int) -> dict[str, float]:
    import socket

    from sleuth.llm.openai_http import OpenAIChatLLM

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "sleuth.cli", "serve-llm", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("serve-llm did not start")
            time.sleep(1)
        llm = OpenAIChatLLM(f"http://127.0.0.1:{port}/v1", "local")
        config = AgentConfig(max_turns=3, max_new_tokens=32, untagged_answer=True)
        agent = Agent(llm, engine, config)
        questions = _questions(episodes)

        async def sequential():
            for q in questions:
                await agent.run(q)

        async def concurrent():
            await asyncio.gather(*(agent.run(q) for q in questions))

        started = time.perf_counter()
        asyncio.run(sequential())
        seq = time.perf_counter() - started
        started = time.perf_counter()
        asyncio.run(concurrent())
        conc = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    return {
        "episodes": episodes,
        "sequential_s": round(seq, 2),
        "concurrent_s": round(conc, 2),
        "speedup": round(seq / conc, 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    engine = open_index(bundled_index("hotpotqa-1100"))
    result = {
        "overhead": overhead(engine, episodes=50 if quick else 200, turns=5),
        "real_model": real_model_share(engine, episodes=2 if quick else 6),
        "concurrency": concurrency_speedup(engine, episodes=4 if quick else 8),
    }
    share = result["real_model"]["share_outside_llm"]
    result["summary"] = [
        {
            "metric": "episodes/s (zero-latency LLM, 5 turns)",
            "value": result["overhead"]["episodes_per_s"],
        },
        {"metric": "us per turn incl. BM25 search", "value": result["overhead"]["us_per_turn"]},
        {
            "metric": "us per turn excluding search",
            "value": result["overhead"]["us_per_turn_excluding_search"],
        },
        {
            "metric": "share of wall time outside the LLM (target < 2%)",
            "value": f"{share:.2%}",
            "pass": share < 0.02,
        },
        {
            "metric": "concurrent vs sequential episodes via serve-llm",
            "value": f"{result['concurrency']['speedup']}x",
        },
    ]
    return result
