"""Shared by the viewer tests: a real evaluation run (real BM25 index, the real runner and
agent loop) driven by a deterministic scripted policy, plus a question full of markup."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from conftest import LiveServer

from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.evaluate.methods import eval_budget
from sleuth.evaluate.runner import EvaluationRunner, RunSettings
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search import open_index
from sleuth.view.app import create_app
from sleuth.view.runs import load_runs
from sleuth.view.state import ViewerState

EVIL = "<script>alert('x')</script><img src=x onerror=alert(1)>"
EVIL_QUESTION = BenchmarkQuestion(
    id="evil-1",
    question=f"{EVIL} Who wrote Hamlet?",
    answers=("William Shakespeare",),
    gold_evidence=(("doc1", "Hamlet"),),
)
_TITLE = re.compile(r"\(id: [^)]*\) ([^\n]+)")


def _observations(messages: list[dict]) -> list[str]:
    return [str(m.get("content") or "") for m in messages[1:] if m.get("role") in ("user", "tool")]


def policy(messages: list[dict]) -> str:
    """Search the question; then search the first title it found; then answer with the first
    title of the latest results. Without a search action, answer from what was prefetched."""
    system = str(messages[0].get("content", ""))
    searches = sum(
        "<search>" in str(m.get("content") or "") for m in messages if m["role"] == "assistant"
    )
    seen = [t for text in _observations(messages) for t in _TITLE.findall(text)]
    question = _observations(messages)[0].splitlines()[-1]
    if "<search>" in system and searches == 0:
        return f"<search>{question}</search>"
    if "<search>" in system and searches == 1 and seen:
        return f"<search>{seen[0]}</search>"
    latest = _TITLE.findall(_observations(messages)[-1])
    return f"<answer>{latest[0] if latest else ' '.join(question.split()[-2:])}</answer>"


SETTINGS = RunSettings(
    benchmark="hotpotqa-1100:test",
    methods=["closed_book", "rag", "agent"],
    seeds=[0],
    budget=eval_budget(top_k=3, max_turns=5, max_searches=3, max_new_tokens=64),
    concurrency=2,
    model="scripted",
    search="bm25",
)


def make_run(index: Path, out: Path, n: int = 6, settings: RunSettings = SETTINGS) -> Path:
    questions = [*load_benchmark("hotpotqa-1100:test", limit=n).questions, EVIL_QUESTION]
    runner = EvaluationRunner(out, settings, questions, ScriptedLLM(policy), open_index(index))
    asyncio.run(runner.run())
    return out


def view_episode(run_dir: Path, episode_id: str) -> str:
    """The viewer's page of one episode of ``run_dir``."""
    state = ViewerState(load_runs([run_dir]), run_dir / "feedback.jsonl")
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/episode", params={"run": run_dir.name, "id": episode_id})
    assert response.status_code == 200, response.text
    return response.text
