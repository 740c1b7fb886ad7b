"""What the viewer holds while it runs: the runs (read only), the feedback log, the forks,
and — for replay — the search engine and a model opened on first use."""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.records import score_trajectory
from sleuth.view.feedback import FeedbackLog
from sleuth.view.replay import Edit, replay
from sleuth.view.runs import Episode, Run

if TYPE_CHECKING:
    from sleuth.llm.base import LLM
    from sleuth.search.base import SearchEngine


def question_of(trajectory: Trajectory) -> BenchmarkQuestion:
    """The benchmark question as the runner recorded it in the trajectory's metadata."""
    meta = trajectory.metadata
    return BenchmarkQuestion(
        id=str(meta.get("question_id", trajectory.episode_id)),
        question=trajectory.question,
        answers=tuple(str(a) for a in meta.get("gold_answers") or ()),
        gold_evidence=tuple(
            tuple(str(a) for a in item) for item in meta.get("gold_evidence") or ()
        ),
    )


def fork_episode(run: str, fork: Trajectory) -> Episode:
    """A fork scored exactly like an evaluated episode, so the page can compare the two."""
    meta = fork.metadata
    record = score_trajectory(
        fork, question_of(fork), str(meta.get("method", "fork")), int(meta.get("seed", 0) or 0)
    )
    record["episode_id"] = fork.episode_id
    return Episode(run, record, fork)


class ViewerState:
    def __init__(
        self,
        runs: dict[str, Run],
        feedback_path: str | Path,
        *,
        engine: SearchEngine | None = None,
        llm: LLM | Callable[[], LLM] | None = None,
    ) -> None:
        self.runs = runs
        self.feedback = FeedbackLog(feedback_path)
        self.engine = engine
        self._llm = llm
        self._llm_lock = asyncio.Lock()
        self.token = secrets.token_urlsafe(24)  # forms carry it: other sites cannot post here
        self.forks: dict[str, list[Episode]] = defaultdict(list)  # parent episode id -> forks
        self.fork_by_id: dict[str, Episode] = {}
        for fork in self.feedback.forks.read():
            self._add_fork(fork)

    @property
    def can_replay(self) -> bool:
        return self.engine is not None and self._llm is not None

    def _add_fork(self, fork: Trajectory) -> Episode:
        run = str(fork.metadata.get("parent_run", ""))
        episode = fork_episode(run, fork)
        self.forks[str(fork.metadata.get("parent_episode_id"))].append(episode)
        self.fork_by_id[fork.episode_id] = episode
        return episode

    def episodes(self) -> list[Episode]:
        return [e for run in self.runs.values() for e in run.episodes.values()]

    def episode(self, run: str, episode_id: str) -> Episode:
        if episode_id in self.fork_by_id:  # fork ids ("fork-...") never clash with run ids
            return self.fork_by_id[episode_id]
        if run not in self.runs:
            raise SleuthError(f"no run named {run!r}")
        found = self.runs[run].episodes.get(episode_id)
        if found is not None and found.damage:
            raise SleuthError(
                f"the trajectory of episode {episode_id!r} is damaged and was skipped "
                f"({found.damage}); the run's other episodes are shown"
            )
        if found is None or found.trajectory is None:
            raise SleuthError(f"run {run!r} has no trajectory for episode {episode_id!r}")
        return found

    async def llm(self) -> LLM:
        if self._llm is None:
            raise SleuthError("replay needs a model: start the viewer with --model or --llm-url")
        async with self._llm_lock:
            if callable(self._llm) and not hasattr(self._llm, "complete"):
                self._llm = await asyncio.to_thread(self._llm)  # load once, off the event loop
        return self._llm  # type: ignore[return-value]

    async def fork(self, run: str, episode_id: str, edit: Edit) -> Episode:
        """Replay ``edit``, store the fork beside the feedback log, and log the edit."""
        parent = self.episode(run, episode_id)
        assert parent.trajectory is not None
        step = edit.check(parent.trajectory)
        llm = await self.llm() if edit.kind != "answer" else None
        if edit.kind != "answer" and self.engine is None:
            raise SleuthError("replay needs a search engine: start with --index or --search-url")
        trajectory = await replay(parent.trajectory, edit, llm, self.engine)
        trajectory.metadata["parent_run"] = parent.run
        self.feedback.forks.append(trajectory)
        episode = self._add_fork(trajectory)
        record: dict[str, Any] = {
            "kind": edit.kind,
            "run": parent.run,
            "episode_id": parent.id,
            "step": edit.step,
            "question": parent.trajectory.question,
            "gold_answers": parent.trajectory.metadata.get("gold_answers", []),
            "fork_id": trajectory.episode_id,
        }
        if edit.kind == "query":
            record.update(query=step.argument, better_query=edit.text.strip())
        elif edit.kind == "answer":
            record.update(answer=edit.text.strip(), previous_answer=parent.trajectory.answer)
        else:
            record.update(query=step.argument, **self.document(parent, edit.step, edit.text))
        self.feedback.append(record)
        return episode

    def document(self, episode: Episode, step: int, doc_id: str) -> dict[str, str]:
        """A document's id, title and text for the log (from the engine, else as shown)."""
        doc_id = doc_id.strip()
        if self.engine is not None:
            try:
                doc = self.engine.get(doc_id)
                return {"doc_id": doc.id, "doc_title": doc.title, "doc_text": doc.text}
            except SleuthError:
                pass
        for hit in episode.hits(step):
            if hit.id == doc_id:
                return {"doc_id": hit.id, "doc_title": hit.title, "doc_text": hit.text}
        return {"doc_id": doc_id, "doc_title": "", "doc_text": ""}

    def thumb(
        self,
        run: str,
        episode_id: str,
        step: int,
        value: int,
        hit_id: str = "",
        comment: str = "",
    ) -> dict[str, Any]:
        episode = self.episode(run, episode_id)
        assert episode.trajectory is not None
        steps = episode.trajectory.steps
        if not 0 <= step < len(steps):
            raise SleuthError(f"step {step} does not exist")
        record: dict[str, Any] = {
            "kind": "thumb",
            "target": "hit" if hit_id else "step",
            "run": episode.run,
            "episode_id": episode.id,
            "step": step,
            "value": value,
            "comment": comment,
            "question": episode.trajectory.question,
            "query": steps[step].argument if steps[step].action == "search" else "",
            "action": steps[step].action,
        }
        if hit_id:
            if hit_id not in {h.id for h in steps[step].hits}:
                raise SleuthError(f"step {step} has no hit {hit_id!r}")
            record.update(hit_id=hit_id, **self.document(episode, step, hit_id))
        return self.feedback.append(record)

    def feedback_for(self, episode_id: str) -> list[dict[str, Any]]:
        return [r for r in self.feedback.read() if r.get("episode_id") == episode_id]
