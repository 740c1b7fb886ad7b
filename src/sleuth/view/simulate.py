"""Run a shadow user over every episode of a run and append its feedback to the log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sleuth.view.feedback import FeedbackLog
from sleuth.view.replay import Edit, replay
from sleuth.view.runs import Episode, load_run_folder
from sleuth.view.shadow import llm_feedback, rule_feedback

if TYPE_CHECKING:
    from sleuth.llm.base import LLM
    from sleuth.search.base import SearchEngine


async def _replay_better_query(
    episode: Episode, record: dict, log: FeedbackLog, agent: LLM, engine: SearchEngine
) -> None:
    """Replay the episode with the shadow user's better query, as a person's edit would be."""
    assert episode.trajectory is not None
    edit = Edit("query", int(record["step"]), str(record["better_query"]))
    fork = await replay(episode.trajectory, edit, agent, engine)
    fork.metadata.update(parent_run=episode.run, simulated=record["source"])
    log.forks.append(fork)
    record["fork_id"] = fork.episode_id


async def simulate(
    run_dir: str | Path,
    log_path: str | Path,
    llm: LLM | None = None,
    *,
    limit: int | None = None,
    method: str | None = None,
    agent: LLM | None = None,
    engine: SearchEngine | None = None,
) -> dict[str, int]:
    """Rule-based feedback when ``llm`` is None, else the model's review. Failed episodes
    (no trajectory, backend error) are skipped: there is nothing to judge.

    With ``agent`` and ``engine``, every better query is also replayed (the fork is linked from
    its record), so shadow feedback yields SFT episodes like a person's edits do."""
    run = load_run_folder(run_dir)
    log = FeedbackLog(log_path)
    counts = {"episodes": 0, "records": 0, "unreadable": 0, "forks": 0}
    for episode in run.episodes.values():
        if limit is not None and counts["episodes"] >= limit:
            break
        if episode.trajectory is None or episode.record.get("error"):
            continue
        if method and episode.method != method:
            continue
        counts["episodes"] += 1
        if llm is None:
            records = rule_feedback(episode)
        else:
            records = await llm_feedback(episode, llm)
            counts["unreadable"] += bool(episode.trajectory.searches) and not records
        for record in records:
            if record["kind"] == "query" and agent is not None and engine is not None:
                await _replay_better_query(episode, record, log, agent, engine)
                counts["forks"] += 1
            log.append(record)
        counts["records"] += len(records)
    for model in {id(m): m for m in (llm, agent) if m is not None}.values():
        await model.aclose()
    return counts
