"""Critics: a score in [0, 1] for a state of an episode, the value a tree search ranks states by
(``sleuth.agent.strategies``).

A critic is any class with ``async score(episode) -> float`` (``Critic``), built from the model
it may call and the agent's configuration, and registered in ``CRITICS`` under the name the
command line gives it (``--critic judge``, the default); ``--critic PATH`` names a critic
trained on past runs (``sleuth.agent.trained_critic``), which ``make_critic`` loads.

``JudgeCritic`` asks the model itself ReSeek's question, in the agent's own ``judge`` action
(its prompt line and grammar from ``sleuth.agent.actions``): are the documents gathered so far
enough to answer? The verdict is the main part of the score; a small adjustment for the step
that made the state (``step_adjustment``) separates states the verdict ties.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sleuth.agent.actions import SPECS
from sleuth.agent.config import AgentConfig
from sleuth.agent.final_read import reading_order
from sleuth.agent.grammar import WORD_CAPS, ActionGrammar
from sleuth.agent.parsing import judge_verdict, parse_tags
from sleuth.agent.prompts import DATA_RULE
from sleuth.agent.trajectory import Step
from sleuth.llm.base import LLM, GenerationConfig, Message

if TYPE_CHECKING:
    from sleuth.agent.loop import Episode
    from sleuth.agent.trained_critic import CriticModel, StateFeatures

__all__ = [
    "CRITICS",
    "Critic",
    "JudgeCritic",
    "make_critic",
    "model_calls_per_score",
    "step_adjustment",
]

# Score = FLOOR + SPAN x verdict (1 yes, 0 no, 0.5 unreadable) + the step's adjustment, in [0, 1].
# An open state on sufficient evidence scores 0.89 at most, the answer given on it 1.0: a
# search ranks the finished answer above the same evidence still searching.
FLOOR, SPAN = 0.1, 0.7
NEW_DOCUMENT_BONUS, MAX_NEW_BONUS = 0.03, 0.09  # a search that found documents not seen before
ERROR_PENALTY = 0.15  # an invalid action, a repeated or failed query, an unknown document
EARLY_END_PENALTY = 0.1  # answered (or selected) on evidence judged insufficient
SURE_END_BONUS = 0.2  # answered (or selected) on evidence judged sufficient
CRITIC_DOCUMENTS = 6  # documents the judge reads, in the final read's order
JUDGE_WORDS = 5  # words of the judge's reason after the first: the verdict is what counts
SYSTEM = (
    "You check whether documents hold enough information to answer a question. Write exactly "
    f"one action:\n- {SPECS['judge'].prompt}\nSay yes only if the documents state every fact "
    f"the answer needs.\n{DATA_RULE}"
)


class Critic(Protocol):
    """Scores a state: 1 = the episode is where it should be, 0 = a dead end."""

    async def score(self, episode: Episode) -> float: ...


def step_adjustment(step: Step | None, verdict: float) -> float:
    """The bonus or penalty of the step that made the state (None: the root): new evidence
    helps, a mistake costs, and ending the episode counts as good only on sufficient evidence."""
    if step is None:
        return 0.0
    if step.error:
        return -ERROR_PENALTY
    if step.action == "search":
        new = sum(1 for hit in step.hits if hit.new)
        return min(MAX_NEW_BONUS, NEW_DOCUMENT_BONUS * new)
    if step.action in ("answer", "select"):
        return SURE_END_BONUS if verdict >= 1.0 else -EARLY_END_PENALTY
    return 0.0


class JudgeCritic:
    """The model as judge of evidence sufficiency (ReSeek): one greedy, grammar-constrained
    ``<judge>yes|no: ...</judge>`` call on the question and up to ``CRITIC_DOCUMENTS``
    documents the state has seen. States with the same documents share one call (``cache``); a
    state with no documents is judged insufficient without a call. ``calls``: calls made."""

    def __init__(self, llm: LLM, cfg: AgentConfig) -> None:
        self.llm, self.cfg = llm, cfg
        self.cache: dict[tuple[str, ...], asyncio.Future[float]] = {}
        self.calls = 0
        self.scores = 0  # states scored (those sharing documents share a call)
        self.errors: list[str] = []  # why calls failed (their states score as unreadable)

    async def score(self, episode: Episode) -> float:
        self.scores += 1
        verdict = await self.sufficiency(episode)
        steps = episode.trajectory.steps
        step = steps[-1] if steps else None
        return max(0.0, min(1.0, FLOOR + SPAN * verdict + step_adjustment(step, verdict)))

    async def sufficiency(self, episode: Episode) -> float:
        """1.0 when the model judges the documents sufficient, 0.0 when not (or none were
        seen), 0.5 when its verdict cannot be read."""
        searches = [[h.id for h in s.hits] for s in episode.trajectory.retrievals if s.hits]
        ids = tuple(reading_order(searches, CRITIC_DOCUMENTS))
        if not ids:
            return 0.0
        if ids not in self.cache:  # states judged at once share the one call
            self.cache[ids] = asyncio.ensure_future(self._judge(episode, list(ids)))
        return await self.cache[ids]

    async def _judge(self, episode: Episode, ids: list[str]) -> float:
        documents = episode.knowledge.render_documents(ids)
        messages: list[Message] = [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"<information>\n{documents}\n</information>\n\n"
                f"Question: {episode.question}\nAre these documents enough to answer it?",
            },
        ]
        grammar = ActionGrammar(
            ("judge",), think=False, word_caps={**WORD_CAPS, "judge": JUDGE_WORDS}
        )
        config = GenerationConfig(
            max_tokens=48,
            temperature=0.0,
            stop=["</judge>"],
            seed=self.cfg.seed,
            constraint=grammar.constraint("tags") if self.cfg.constrain else None,
        )
        self.calls += 1
        try:
            completion = await self.llm.complete(messages, config)
        except Exception as exc:  # a failed judgement is no verdict, not a failed episode
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return 0.5
        action = parse_tags(completion.text, ("judge",))
        verdict = judge_verdict(action.argument) if action.name == "judge" else None
        return 0.5 if verdict is None else float(verdict)


# name -> the class, built as ``cls(llm, cfg)`` (the model it may call, the agent's settings).
CRITICS: dict[str, Callable[[LLM, AgentConfig], Critic]] = {"judge": JudgeCritic}


def model_calls_per_score(critic: object) -> int:
    """The most model calls one ``score`` makes: what a tree search promises its budget before
    scoring a state (1 unless the critic says otherwise: a trained critic calls none)."""
    return int(getattr(critic, "model_calls_per_score", 1))


# Trained critics loaded in this process: (folder, manifest's mtime) -> model and manifest; one
# StateFeatures (its encoder and embedding cache) shared by every question's critic.
_LOADED: dict[tuple[str, float], tuple[CriticModel, dict[str, Any]]] = {}
_FEATURES: list[StateFeatures] = []


def make_critic(name: str, llm: LLM, cfg: AgentConfig) -> Critic:
    """The critic ``name`` names: a registered one (``CRITICS``), else the trained critic
    folder at that path (loaded once per process and checked; ``SleuthError`` when it is not
    one)."""
    if name in CRITICS:
        return CRITICS[name](llm, cfg)
    from pathlib import Path

    from sleuth.agent.trained_critic import (
        MANIFEST,
        StateFeatures,
        TrainedCritic,
        load_critic,
    )

    folder = Path(name)
    manifest_path = folder / MANIFEST
    stamp = manifest_path.stat().st_mtime if manifest_path.is_file() else 0.0
    key = (str(folder.resolve()), stamp)
    if key not in _LOADED:
        _LOADED[key] = load_critic(folder)
    if not _FEATURES:
        _FEATURES.append(StateFeatures())
    model, manifest = _LOADED[key]
    return TrainedCritic(model, manifest, _FEATURES[0])
