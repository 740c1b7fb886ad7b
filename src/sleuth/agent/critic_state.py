"""The state a trained critic scores: what an episode knows after a step (the question, its
queries, the documents gathered as titles and snippets, a few counts), built the same way from a
live ``Episode`` (``state_of_episode``, when a tree search asks) and from a stored trajectory
(``states_of_trajectory``, one state after each step, when ``sleuth train critic`` learns).

Gold-free by construction: nothing here reads answers or gold evidence, so a critic trained on
these states can score a question nobody has labelled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sleuth.agent.escape import neutralise

if TYPE_CHECKING:
    from sleuth.agent.loop import Episode
    from sleuth.agent.trajectory import Step, Trajectory

__all__ = ["SNIPPET_CHARS", "CriticState", "state_of_episode", "states_of_trajectory"]

SNIPPET_CHARS = 200  # characters of each document's text the critic reads


@dataclass(frozen=True)
class CriticState:
    """One state: ``documents`` are (title, snippet) in first-seen order; ``key`` names the
    state by the question and the actions that led to it, so episodes that share a prefix share
    a key (their outcomes are averaged)."""

    question: str
    queries: tuple[str, ...]
    documents: tuple[tuple[str, str], ...]
    steps: int
    searches: int
    errors: int
    answered: bool
    key: tuple[str, tuple[tuple[str, str], ...]]

    def document_texts(self) -> list[str]:
        return [f"{title}. {snippet}" for title, snippet in self.documents]


def _state(question: str, steps: list[Step], documents: dict[str, tuple[str, str]]) -> CriticState:
    """The state after ``steps``; ``documents``: id -> (title, text) of every hit shown."""
    counted = [step for step in steps if not step.fresh_context]  # the final read adds nothing
    seen: dict[str, tuple[str, str]] = {}
    for step in counted:
        for hit in step.hits:
            if hit.id not in seen:
                title, text = documents.get(hit.id, ("", ""))
                seen[hit.id] = (title, text[:SNIPPET_CHARS])
    searches = [step for step in counted if step.action == "search" and not step.error]
    actions = tuple((s.action, " ".join(s.argument.lower().split())) for s in counted)
    return CriticState(
        question=question,
        queries=tuple(step.argument for step in searches),
        documents=tuple(seen.values()),
        steps=len(counted),
        searches=len(searches),
        errors=sum(1 for step in counted if step.error),
        answered=bool(counted) and counted[-1].action in ("answer", "select"),
        key=(" ".join(question.lower().split()), actions),
    )


def state_of_episode(episode: Episode) -> CriticState:
    """The live state of ``episode`` (documents as its knowledge cache first showed them)."""
    return _state(episode.question, list(episode.trajectory.steps), episode.knowledge.documents)


def states_of_trajectory(trajectory: Trajectory) -> list[CriticState]:
    """One state after each step of ``trajectory`` (a final read's step adds none), the
    documents read back from the steps' observations as the model was shown them."""
    documents = _shown_documents(trajectory.steps)
    states, prefix = [], []
    for step in trajectory.steps:
        prefix.append(step)
        if not step.fresh_context:
            states.append(_state(trajectory.question, prefix, documents))
    return states


def _shown_documents(steps: list[Step]) -> dict[str, tuple[str, str]]:
    """id -> (title, text) of each hit shown in full, parsed from its search's observation
    (``KnowledgeCache.render_hits``'s blocks: ``[n] (id: ID) TITLE`` then the text's line)."""
    found: dict[str, tuple[str, str]] = {}
    for step in steps:
        lines = step.observation.splitlines()
        for hit in step.hits:
            if hit.id in found or not hit.new:
                continue
            head = re.compile(rf"^\[\d+\] \(id: {re.escape(neutralise(hit.id))}\) (.*)$")
            for i, line in enumerate(lines):
                match = head.match(line)
                if match:
                    text = lines[i + 1] if i + 1 < len(lines) else ""
                    found[hit.id] = (match.group(1), text)
                    break
    return found
