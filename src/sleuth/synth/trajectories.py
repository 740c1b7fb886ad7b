"""``sleuth synth trajectories``: SFT episodes from the real loop and engine, a scripted policy.

Only questions the project may train on: the HotpotQA-1100 ``train`` and ``dev`` splits (never
``test``). Each question is played by a ``BehaviourScript`` through ``sleuth.agent.Agent`` with
``ScriptedLLM``, so every prompt, observation and stop-string cut is the loop's own. Episodes
whose gold paragraphs were not both retrieved, or that did not end with the gold answer, are
dropped and counted.

A ``sleuth synth ambiguous`` file (train or dev questions only) gives clarification episodes:
the ``ask`` action is offered, an ambiguous question's episode asks the simulated user first
and searches with its reply, a clear question's never asks (``sleuth.synth.ask_episodes``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.agent.config import AgentConfig
from sleuth.agent.log import TrajectoryLog
from sleuth.agent.loop import Agent
from sleuth.agent.trajectory import Trajectory
from sleuth.agent.users import make_user, parse_user
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search.base import SearchEngine
from sleuth.synth.ask_episodes import (
    ask_for,
    intent_missed,
    is_question_file,
    load_clarify_file,
    with_titles,
)
from sleuth.synth.plans import covers_gold, episode_rng, plan_for
from sleuth.synth.script import BehaviourScript
from sleuth.synth.searcher_episodes import (
    TEACHERS,
    Teaching,
    follow_searcher_episode,
    link_searcher_episode,
    searcher_episode,
)

ALLOWED_BENCHMARKS = ("hotpotqa-1100:train", "hotpotqa-1100:dev")
SYNTH_CONFIG = AgentConfig(
    actions=("search", "open", "answer"),
    top_k=3,
    doc_chars=300,
    max_turns=6,
    max_searches=4,
    max_new_tokens=64,
    prompt_example=False,
)
JUDGE_ACTIONS = ("search", "open", "judge", "answer")
ASK_ACTIONS = ("search", "open", "ask", "answer")  # the agent_ask method's
JUDGE_ASK_ACTIONS = ("search", "open", "judge", "ask", "answer")
RULES_USER = parse_user("simulated:rules")


@dataclass
class SynthStats:
    questions: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    behaviours: Counter = field(default_factory=Counter)  # behaviour -> kept episodes showing it

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "behaviours": dict(sorted(self.behaviours.items())),
        }


def check_benchmark(name: str) -> None:
    """Refuse anything but the training splits: a test question must never be trained on. A
    ``synth ambiguous`` file passes when every record says ``train`` or ``dev``."""
    if is_question_file(name):
        load_clarify_file(name)
        return
    if name not in ALLOWED_BENCHMARKS:
        raise SleuthError(
            f"synth trajectories only uses {' or '.join(ALLOWED_BENCHMARKS)} (questions with "
            f"gold evidence that are not evaluated on) or a `sleuth synth ambiguous` file of "
            f"train or dev questions, not {name!r}"
        )


def load_questions(name: str, search: SearchEngine, limit: int | None) -> list[BenchmarkQuestion]:
    """A benchmark's questions; a ``synth ambiguous`` file's with their gold titles."""
    if is_question_file(name):
        return [with_titles(q, search) for q in load_clarify_file(name, limit)]
    return load_benchmark(name, limit=limit).questions


def _drop_reason(traj: Trajectory, question: BenchmarkQuestion, answer: str) -> str:
    if traj.stop_reason != "answered" or traj.answer != answer:
        return f"not_answered:{traj.stop_reason}"
    if traj.invalid_actions:
        return "invalid_action"
    retrieved = set(traj.retrieved_ids) | {
        s.argument for s in traj.steps if s.action == "open" and not s.error
    }
    if not covers_gold(retrieved, question):
        return "evidence_not_retrieved"
    return ""


async def synth_episode(
    question: BenchmarkQuestion,
    search: SearchEngine,
    benchmark: str,
    seed: int,
    judge_share: float = 0.3,
    prefetch_k: int = 0,
    think_share: float = 0.0,
) -> tuple[Trajectory | None, str, list[str]]:
    """One scripted episode: ``(trajectory or None, drop reason, behaviours shown)``.
    ``prefetch_k`` > 0: the loop retrieves the question first (the ``agent_rag`` method). A
    question that says ``ambiguous`` (a ``synth ambiguous`` file) is offered ``ask``, and the
    rules user answers it from the question's intent."""
    rng = episode_rng(seed, question)
    clarify = isinstance(question.metadata.get("ambiguous"), bool)
    config = replace(SYNTH_CONFIG, prefetch_k=prefetch_k)
    if clarify:
        config = replace(config, actions=ASK_ACTIONS)
    if rng.random() < judge_share:
        config = replace(config, actions=JUDGE_ASK_ACTIONS if clarify else JUDGE_ACTIONS)
    plan = plan_for(question, search, config, rng)
    if plan is None:
        return None, "not_scriptable", []
    plan = replace(plan, think_rate=think_share, ask=ask_for(question))
    script = BehaviourScript(plan, rng, config.max_turns, config.max_searches)
    llm = ScriptedLLM(script, name="synthetic-script")
    user = None
    if clarify:
        user = make_user(
            RULES_USER,
            str(question.metadata.get("intent") or ""),
            question.answers,
            kind_of_intent=str(question.metadata.get("intent_kind") or ""),
        )
    agent = Agent(llm, search, config, ask_user=user)
    traj = await agent.run(question.question, episode_id=question.id)
    behaviours = list(dict.fromkeys(script.behaviours))
    traj.metadata = {
        "synthetic": True,
        "source": "sleuth synth trajectories",
        "benchmark": benchmark,
        "question_id": question.id,
        "type": question.metadata.get("type", ""),
        "answers": list(question.answers),
        "evidence_ids": [list(a) for a in question.gold_evidence],
        "behaviours": behaviours,
        "hops": [plan.hop1_title, plan.hop2_title],
        "seed": seed,
        "prefetch_k": prefetch_k,
    }
    if user is not None:
        traj.metadata.update(
            ambiguous=question.metadata["ambiguous"],
            intent=user.intent,
            intent_kind=user.kind_of_intent,
            user=user.record(),
        )
    reason = _drop_reason(traj, question, plan.answer)
    if clarify and not reason:
        reason = intent_missed(traj, question)
    return (None if reason else traj), reason, behaviours


def synth_trajectories(
    benchmarks: list[str],
    search: SearchEngine,
    out: Path,
    limit: int | None = None,
    seed: int = 0,
    judge_share: float = 0.3,
    prefetch_k: int = 0,
    think_share: float = 0.0,
    searcher_k: int = 0,
    teacher: str = "gold",
) -> SynthStats:
    """Write kept episodes to ``out`` (a new trajectory JSONL); ``limit`` is per benchmark.
    ``searcher_k`` > 0: the ``searcher@K`` method's episodes (``synth.searcher_episodes``),
    scripted by ``teacher``: "gold" (searches the gold paragraphs' titles), "links" (plays
    the links pipeline by searches) or "follow" (plays it with ``follow``: searcher_links@K)."""
    if teacher not in TEACHERS:
        raise SleuthError(f"--teacher must be one of {', '.join(TEACHERS)}, not {teacher!r}")
    if teacher != "gold" and not searcher_k:
        raise SleuthError("--teacher scripts a searcher's episodes; give --searcher K too")
    for benchmark in benchmarks:
        check_benchmark(benchmark)
        if searcher_k and is_question_file(benchmark):
            raise SleuthError(
                "--searcher episodes are built from hotpotqa-1100:train or :dev, not from a "
                f"`synth ambiguous` file ({benchmark})"
            )
    if not 0 <= searcher_k <= 50:
        raise SleuthError(f"--searcher K must be 1 to 50 (0: agent episodes), not {searcher_k}")
    if searcher_k and prefetch_k:
        raise SleuthError("--searcher K retrieves RAG's top K itself; leave --prefetch out")
    if out.exists():
        raise SleuthError(f"{out} exists; choose a new --out (synthetic data is never appended)")
    questions = [(name, q) for name in benchmarks for q in load_questions(name, search, limit)]
    stats = SynthStats(questions=len(questions))

    async def run_all() -> list[tuple[Trajectory | None, str, list[str]]]:
        gate = asyncio.Semaphore(8)

        async def one(name: str, q: BenchmarkQuestion):
            async with gate:
                if searcher_k:
                    play = {
                        "links": link_searcher_episode,
                        "follow": follow_searcher_episode,
                    }.get(teacher, searcher_episode)
                    return await play(Teaching(q, search, name, seed, searcher_k, think_share))
                return await synth_episode(
                    q, search, name, seed, judge_share, prefetch_k, think_share
                )

        return list(await asyncio.gather(*(one(name, q) for name, q in questions)))

    results = asyncio.run(run_all())
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.unlink(missing_ok=True)
    log = TrajectoryLog(tmp)
    for traj, reason, behaviours in results:
        if traj is None:
            stats.dropped[reason] += 1
            continue
        stats.kept += 1
        stats.behaviours.update(behaviours)
        log.append(traj)
    tmp.replace(out)
    return stats
