"""Searcher episodes for priming (``sleuth synth trajectories --searcher K``).

Each question is played through the real loop as the ``searcher@K`` method plays it under
``eval run``'s budget (RAG's top K first, follow-up searches of 3 hits, ``<select>``, a final
read of K documents), with ``SearcherScript`` as the searcher and a scripted reader that says
the gold answer (the reader's turn is a separate call that SFT leaves out: only the searcher's
turns are trained on). Kept: episodes whose selection names every gold paragraph.
"""

from __future__ import annotations

from dataclasses import dataclass

from sleuth.agent.config import AgentConfig
from sleuth.agent.loop import Agent
from sleuth.agent.trajectory import Trajectory
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.methods import agent_config, eval_budget
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search.base import SearchEngine
from sleuth.search.links import names_in, normalise
from sleuth.synth.link_searcher import FollowSearcherScript, LinkSearcherScript, link_plan
from sleuth.synth.plans import covers_gold, episode_rng, plan_for
from sleuth.synth.searcher_script import SearcherScript, gold_reader

TEACHERS = ("gold", "links", "follow")  # who the scripted searcher imitates (``--teacher``)


@dataclass(frozen=True)
class Teaching:
    """One question for a teacher: the engine, the benchmark it came from and the run's seed
    (recorded), the read budget ``k`` (RAG's depth, as in ``searcher@k``) and the share of
    turns that think first."""

    question: BenchmarkQuestion
    search: SearchEngine
    benchmark: str
    seed: int
    k: int
    think_share: float


def searcher_config(k: int, follow: bool = False) -> AgentConfig:
    """The ``searcher@k`` method exactly as ``eval run`` configures it under its default budget
    (top_k 3, 8 turns, 4 searches, 600-character hits, the prompt's example), so a primed
    searcher runs under eval's defaults as it was trained (trained_settings); 64 new tokens a
    turn are plenty for the script's actions. ``follow``: ``searcher_links@k``."""
    method = f"searcher_links@{k}" if follow else f"searcher@{k}"
    return agent_config(method, eval_budget(max_new_tokens=64))


SEARCHER_SYNTH_CONFIG = searcher_config(5)  # searcher@5, the K the measured priming used


def _drop_reason(traj: Trajectory, question: BenchmarkQuestion) -> str:
    if traj.stop_reason != "selected":
        return f"not_selected:{traj.stop_reason}"
    if traj.invalid_actions:
        return "invalid_action"
    selected = set(traj.metadata.get("selected") or ())
    if not covers_gold(selected, question):
        return "evidence_not_selected"
    return ""


async def _play(
    job: Teaching,
    config: AgentConfig,
    searcher: ScriptedLLM,
    answer: str,
    behaviours: list[str],
    **record: object,
) -> tuple[Trajectory, list[str]]:
    """The scripted searcher's episode through the real loop, with a scripted reader that says
    ``answer``; the trajectory carries the question's gold, the behaviours shown (once each,
    in order; also returned), the job's benchmark, seed and K, and ``record``."""
    question = job.question
    traj = await Agent(searcher, job.search, config, reader=gold_reader(answer)).run(
        question.question, episode_id=question.id
    )
    shown = list(dict.fromkeys(behaviours))
    traj.metadata.update(
        synthetic=True,
        question_id=question.id,
        type=question.metadata.get("type", ""),
        answers=list(question.answers),
        evidence_ids=[list(a) for a in question.gold_evidence],
        behaviours=shown,
        benchmark=job.benchmark,
        seed=job.seed,
        prefetch_k=job.k,
        **record,
    )
    return traj, shown


async def searcher_episode(job: Teaching) -> tuple[Trajectory | None, str, list[str]]:
    """One scripted searcher episode: ``(trajectory or None, drop reason, behaviours)``."""
    rng = episode_rng(job.seed, job.question)
    config = searcher_config(job.k)
    plan = plan_for(job.question, job.search, config, rng)
    if plan is None:
        return None, "not_scriptable", []
    script = SearcherScript(plan, rng, config.max_turns, config.max_searches, job.think_share)
    traj, behaviours = await _play(
        job, config, ScriptedLLM(script, name="synthetic-searcher-script"), plan.answer,
        script.behaviours, source="sleuth synth trajectories --searcher",
        hops=[plan.hop1_title, plan.hop2_title],
    )  # fmt: skip
    reason = _drop_reason(traj, job.question)
    return (None if reason else traj), reason, behaviours


async def link_searcher_episode(job: Teaching) -> tuple[Trajectory | None, str, list[str]]:
    """One episode of a searcher playing ``links`` (``synth.link_searcher``): kept when its
    selection is links' read and names every gold paragraph."""
    plan = await link_plan(job.question, job.search, job.k)
    if plan is None:
        return None, "not_scriptable", []
    rng = episode_rng(job.seed, job.question)
    config = searcher_config(job.k)
    script = LinkSearcherScript(plan, rng, config.max_turns, config.max_searches, job.think_share)
    traj, behaviours = await _play(
        job, config, ScriptedLLM(script, name="synthetic-link-searcher-script"), plan.answer,
        script.behaviours, source="sleuth synth trajectories --searcher --teacher links",
        links_read=list(plan.read),
    )  # fmt: skip
    reason = _drop_reason(traj, job.question)
    if not reason and set(traj.metadata.get("selected") or ()) != set(plan.read):
        reason = "links_read_not_selected"  # a linked hit the loop's search did not return
    if not reason and not _queries_on_screen(traj):
        reason = "name_not_on_screen"  # links read past the 600 characters the searcher sees
    return (None if reason else traj), reason, behaviours


async def follow_searcher_episode(job: Teaching) -> tuple[Trajectory | None, str, list[str]]:
    """One ``searcher_links@K`` episode of ``FollowSearcherScript`` (follow the question's
    names and [1]'s, select links' read by number): kept when its selection names every gold
    paragraph."""
    if not job.question.answers or not job.question.answers[0].strip():
        return None, "not_scriptable", []
    traj, behaviours = await play_follow_searcher(job)
    return (None if (reason := _drop_reason(traj, job.question)) else traj), reason, behaviours


async def play_follow_searcher(job: Teaching) -> tuple[Trajectory, list[str]]:
    """The teacher's episode before the drop filter: what the rule reads on any question (the
    test that compares its read with RAG's plays it on every question, kept or not)."""
    question = job.question
    rng = episode_rng(job.seed, question)
    config = searcher_config(job.k, follow=True)
    script = FollowSearcherScript(job.k, bool(names_in(question.question)), rng, job.think_share)
    return await _play(
        job, config, ScriptedLLM(script, name="synthetic-follow-searcher-script"),
        question.answers[0].strip(), script.behaviours,
        source="sleuth synth trajectories --searcher --teacher follow",
    )  # fmt: skip


def _queries_on_screen(traj: Trajectory) -> bool:
    """True when every follow-up query is a name in the question or in what was shown before
    it, so the searcher is never taught to write a name it could not have read."""
    screen = normalise(traj.question)
    for step in traj.steps:
        if step.action == "search" and step.model_output and normalise(step.argument) not in screen:
            return False
        screen += " " + normalise(step.observation or "")
    return True
