"""The evaluation runner through the real agent loop and a real BM25 index: resume after
SIGKILL, failure isolation, config, and the CLI. The LLM is a deterministic scripted policy
(searches the question, answers from what it read) so outcomes can be compared exactly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.methods import eval_budget
from sleuth.evaluate.records import ResultLog
from sleuth.evaluate.runner import EvaluationRunner, RunSettings

# Run as a script: the real runner on a real index with a slow scripted LLM, so the test can
# kill it part-way. argv: index out n delay_seconds
DRIVER = r"""
import asyncio, sys
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.methods import eval_budget
from sleuth.evaluate.runner import EvaluationRunner, RunSettings
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search import open_index
sys.path.insert(0, sys.argv[5])
from test_eval_runner import policy, SlowLLM, SETTINGS

index, out, n, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
questions = load_benchmark("hotpotqa-1100:test", limit=n).questions
llm = SlowLLM(ScriptedLLM(policy), delay)
runner = EvaluationRunner(out, SETTINGS, questions, llm, open_index(index))
outcome = asyncio.run(runner.run())
print(outcome.ran, outcome.skipped, outcome.recovered)
"""

SETTINGS = RunSettings(
    benchmark="hotpotqa-1100:test",
    methods=["closed_book", "rag", "agent"],
    seeds=[0, 1],
    budget=eval_budget(top_k=2, max_turns=4, max_searches=2, max_new_tokens=32),
    concurrency=3,
    model="scripted",
    search="bm25",
)


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") in ("user", "tool") and message.get("content"):
            return str(message["content"])
    return ""


def policy(messages: list[dict]) -> str:
    """Deterministic: search once with the question if searching is offered, then answer with
    the first words of the latest observation (so answers depend on what was retrieved)."""
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    searched = any("<search>" in str(m.get("content", "")) for m in messages[1:])
    if "<search>" in system and not searched:
        question = _last_user_text(messages).splitlines()[-1][:200]
        return f"<search>{question}</search>"
    words = _last_user_text(messages).replace("<", " ").replace(">", " ").split()
    return f"<answer>{' '.join(words[-3:])}</answer>"


class SlowLLM:
    """Adds a fixed latency to a scripted LLM so a run lasts long enough to be killed."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay, self.name = inner, delay, "slow-scripted"

    async def complete(self, messages, config=None, tools=None):
        import asyncio

        await asyncio.sleep(self.delay)
        return await self.inner.complete(messages, config, tools)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run_driver(index: Path, out: Path, n: int, delay: float) -> subprocess.Popen:
    tests_dir = str(Path(__file__).resolve().parent)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(index), str(out), str(n), str(delay), tests_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _outcomes(run_dir: Path) -> dict[str, tuple]:
    fields = ("prediction", "em", "f1", "cover_em", "evidence_recall", "searches", "turns")
    return {
        r["key"]: tuple(r[f] for f in fields) for r in ResultLog(run_dir / "results.jsonl").read()
    }


def _raw_keys(run_dir: Path) -> list[str]:
    keys = []
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a torn line from the kill
            keys.append(json.loads(line)["key"])
    return keys


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, hotpot_bm25_path) -> None:
    n = 6
    expected_total = n * len(SETTINGS.methods) * len(SETTINGS.seeds)  # 36 episodes

    clean = _run_driver(hotpot_bm25_path, tmp_path / "clean", n, 0.0)
    assert clean.wait(timeout=120) == 0, clean.stderr.read()

    killed = _run_driver(hotpot_bm25_path, tmp_path / "killed", n, 0.15)
    results = tmp_path / "killed" / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.is_file() and len(results.read_text().splitlines()) >= 8:
            break
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    partial = len(_raw_keys(tmp_path / "killed"))
    assert 8 <= partial < expected_total, "the kill should land part-way through the run"

    resumed = _run_driver(hotpot_bm25_path, tmp_path / "killed", n, 0.0)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    ran, skipped, recovered = map(int, stdout.split())
    assert skipped == partial + recovered and ran + skipped == expected_total

    raw = _raw_keys(tmp_path / "killed")
    assert len(raw) == len(set(raw)) == expected_total  # nothing lost, nothing duplicated
    assert _outcomes(tmp_path / "killed") == _outcomes(tmp_path / "clean")
    episodes = Counter(
        json.loads(line)["episode_id"]
        for line in (tmp_path / "killed" / "trajectories.jsonl").read_text().splitlines()
        if line.startswith("{") and line.endswith("}")
    )
    assert set(episodes) == set(raw) and max(episodes.values()) == 1


class FlakyEngine:
    """The real index, except that one query term makes the search backend fail."""

    def __init__(self, engine) -> None:
        self.engine, self.name = engine, "flaky"

    def search(self, query, k=10):
        if "Levertov" in query:
            raise ConnectionError("search backend unreachable")
        return self.engine.search(query, k)

    def search_batch(self, queries, k=10):
        return [self.search(q, k) for q in queries]

    def get(self, doc_id):
        return self.engine.get(doc_id)

    def __len__(self) -> int:
        return len(self.engine)


def test_a_failing_question_is_recorded_and_the_run_continues(tmp_path, hotpot_bm25) -> None:
    import asyncio

    from sleuth.llm.scripted import ScriptedLLM

    questions = load_benchmark("hotpotqa-1100:test", limit=3).questions  # q0 mentions Levertov
    settings = RunSettings(
        benchmark="hotpotqa-1100:test", methods=["rag", "agent"], seeds=[0], model="scripted"
    )
    runner = EvaluationRunner(
        tmp_path, settings, questions, ScriptedLLM(policy), FlakyEngine(hotpot_bm25)
    )
    outcome = asyncio.run(runner.run())
    records = {r["key"]: r for r in ResultLog(tmp_path / "results.jsonl").read()}
    assert outcome.ran == len(records) == 6
    first = [r for r in records.values() if r["question_id"] == questions[0].id]
    others = [r for r in records.values() if r["question_id"] != questions[0].id]
    assert all(
        r["stop_reason"] in ("search_error", "llm_error", "error") or r["error"] for r in first
    )
    assert all(r["prediction"] for r in others)
    assert outcome.failed == sum(1 for r in records.values() if r["error"])

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["methods"] == ["rag", "agent"]
    assert config["versions"]["python"] and "torch" in config["versions"]
    assert config["method_configs"]["rag"]["prefetch_k"] == settings.budget.top_k
    changed = RunSettings(benchmark="bamboogle", methods=["rag"], model="scripted")
    with pytest.raises(SleuthError, match="different settings"):
        asyncio.run(
            EvaluationRunner(tmp_path, changed, questions, ScriptedLLM(policy), hotpot_bm25).run()
        )


def test_search_methods_need_an_engine(tmp_path) -> None:
    from sleuth.llm.scripted import ScriptedLLM

    questions = load_benchmark("bamboogle", limit=1).questions
    settings = RunSettings(benchmark="bamboogle", methods=["closed_book", "rag"])
    with pytest.raises(SleuthError, match="need a search engine"):
        EvaluationRunner(tmp_path, settings, questions, ScriptedLLM(policy), None)


def test_an_episode_the_model_ended_with_invalid_actions_is_a_result_not_a_failure(hotpot_bm25):
    """max_invalid is the model's outcome (scored, never retried); a raising backend is not."""
    import asyncio

    from sleuth.agent import Agent, AgentConfig
    from sleuth.evaluate.records import episode_error
    from sleuth.llm.scripted import ScriptedLLM

    prose = ScriptedLLM(["I think it is Paris."] * 3)
    config = AgentConfig(max_invalid=3, force_answer=False, constrain=False)
    invalid = asyncio.run(Agent(prose, hotpot_bm25, config).run("capital of France?"))
    assert invalid.stop_reason == "max_invalid" and invalid.metadata.get("error")
    assert episode_error(invalid) is None
    broken = asyncio.run(Agent(ScriptedLLM([]), hotpot_bm25, config).run("capital of France?"))
    assert broken.stop_reason == "llm_error" and "ran out of outputs" in episode_error(broken)


def test_index_bundled_names_the_bundled_hotpotqa_index(monkeypatch, tmp_path):
    """`--index bundled` (what `synth questions` explores) unless a folder of that name exists."""
    from pathlib import Path

    from sleuth.search.bundled import bundled_index
    from sleuth.search.factory import open_engine

    opened = open_engine(Path("bundled"), None, default=None)
    engine, manifest, label = opened.engine, opened.manifest, opened.label
    assert len(engine) == 10785 and manifest["corpus"]["source"] == "hotpotqa-1100"
    assert label == str(bundled_index().resolve())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bundled").mkdir()
    with pytest.raises(Exception, match="bundled"):
        # a real folder of that name is taken as given
        open_engine(Path("bundled"), None, default=None)
