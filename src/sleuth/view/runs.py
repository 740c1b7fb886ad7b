"""Evaluation run folders as the viewer sees them: result records joined to their
trajectories, gold evidence resolved per hit, and per-method summaries.

Nothing here writes: the run's files are read only, and a torn last line (a run killed
mid-write) is skipped like the evaluation itself skips it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html import unescape
from pathlib import Path
from typing import Any

from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.evaluate.report import load_run, read_trajectories
from sleuth.evaluate.runner import TRAJECTORIES_FILE
from sleuth.evaluate.summary import summarize
from sleuth.metrics import base_doc_id

# "[2] (id: doc12) Title" and "[2] already seen: (id: doc12) Title" lines of an observation.
_HIT_LINE = re.compile(r"^\[(\d+)\] (?:already seen: )?\(id: (.*?)\) (.*)$")


@dataclass(frozen=True, slots=True)
class HitView:
    """One hit of one step, with what the trajectory alone does not store (title, text, gold)."""

    id: str
    rank: int
    score: float
    new: bool
    title: str
    text: str
    gold: bool


@dataclass
class Episode:
    """A result record and its trajectory (``None`` when the trajectory line is missing)."""

    run: str  # the run's label in the viewer
    record: dict[str, Any]
    trajectory: Trajectory | None
    damage: str = ""  # "FILE:LINE: reason" when the trajectory line is damaged

    @property
    def id(self) -> str:
        return str(self.record["episode_id"])

    @property
    def method(self) -> str:
        return str(self.record["method"])

    @property
    def question_id(self) -> str:
        return str(self.record["question_id"])

    @cached_property
    def gold_ids(self) -> set[str]:
        """Every alias of every gold evidence item (BEIR id and title)."""
        meta = self.trajectory.metadata if self.trajectory else {}
        return {str(a) for item in meta.get("gold_evidence") or [] for a in item}

    def is_gold(self, doc_id: str) -> bool:
        return doc_id in self.gold_ids or base_doc_id(doc_id) in self.gold_ids

    def alternatives(self, step_index: int) -> list[dict[str, Any]]:
        """A tree search's other candidates for step ``step_index`` (``Trajectory.tree``): the
        siblings of the node that took it, each with its action, argument and critic score,
        best first; empty for ReAct's chain and for steps no search weighed."""
        tree = self.trajectory.tree if self.trajectory else []
        taken = next((n for n in tree if n.get("chosen") and n.get("step") == step_index), None)
        if taken is None:
            return []
        others = [n for n in tree if n.get("parent") == taken["parent"] and n is not taken]
        return sorted(others, key=lambda n: (-(n.get("score") or 0.0), n.get("id", 0)))

    def hits(self, step_index: int) -> list[HitView]:
        if self.trajectory is None:
            return []
        step = self.trajectory.steps[step_index]
        shown = observed_hits(step.observation)
        return [
            HitView(
                id=h.id,
                rank=h.rank,
                score=h.score,
                new=h.new,
                title=shown.get(h.id, ("", ""))[0],
                text=shown.get(h.id, ("", ""))[1],
                gold=self.is_gold(h.id),
            )
            for h in step.hits
        ]


def observed_hits(observation: str) -> dict[str, tuple[str, str]]:
    """``{doc id: (title, text)}`` as the model was shown them (text empty for seen ones).

    The loop neutralises ``& < >`` in documents; they are turned back into characters here and
    escaped again by the page, so a title reads as written and never acts as markup.
    """
    found: dict[str, tuple[str, str]] = {}
    current: str | None = None
    for line in observation.splitlines():
        match = _HIT_LINE.match(line)
        if match:
            current = unescape(match.group(2))
            found[current] = (unescape(match.group(3)), "")
        elif current is not None and line not in ("</information>",):
            title, text = found[current]
            found[current] = (title, (text + " " + unescape(line)).strip())
    return found


@dataclass
class Run:
    """One run folder: its settings, summary per method, and episodes by id."""

    label: str
    path: Path
    config: dict[str, Any]
    episodes: dict[str, Episode] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        order = list(self.config.get("methods") or [])
        order += sorted({e.method for e in self.episodes.values()} - set(order))
        return order

    @cached_property
    def summary(self) -> dict[str, dict[str, Any]]:
        return summarize([e.record for e in self.episodes.values()], self.methods)


def load_run_folder(path: str | Path, label: str | None = None) -> Run:
    folder = Path(path).expanduser()
    config, records = load_run(folder)
    damaged: dict[str, str] = {}
    wanted = {str(r["episode_id"]) for r in records}
    found = read_trajectories(folder / TRAJECTORIES_FILE, wanted, damaged)
    label = label or folder.name
    episodes = {}
    for record in records:
        data = found.get(str(record["episode_id"]))
        trajectory = Trajectory.from_dict(data) if data else None  # checked by the reader
        episode = Episode(label, record, trajectory, damaged.get(str(record["episode_id"]), ""))
        episodes[episode.id] = episode
    return Run(label, folder, config, episodes)


def load_runs(paths: Sequence[str | Path]) -> dict[str, Run]:
    """Runs by a short unique label (the folder name, made unique with its parent)."""
    if not paths:
        raise SleuthError("give at least one run folder (written by `sleuth eval run`)")
    runs: dict[str, Run] = {}
    for path in paths:
        folder = Path(path).expanduser()
        label = folder.name or str(folder)
        if label in runs:
            label = f"{folder.parent.name}/{folder.name}"
        n = 2
        while label in runs:
            label, n = f"{folder.name}-{n}", n + 1
        runs[label] = load_run_folder(folder, label)
    return runs
