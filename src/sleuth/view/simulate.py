"""Run a shadow user over every episode of a run and append its feedback to the log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sleuth.view.feedback import FeedbackLog
from sleuth.view.runs import load_run_folder
from sleuth.view.shadow import llm_feedback, rule_feedback

if TYPE_CHECKING:
    from sleuth.llm.base import LLM


async def simulate(
    run_dir: str | Path,
    log_path: str | Path,
    llm: LLM | None = None,
    *,
    limit: int | None = None,
    method: str | None = None,
) -> dict[str, int]:
    """Rule-based feedback when ``llm`` is None, else the model's review. Failed episodes
    (no trajectory, backend error) are skipped: there is nothing to judge."""
    run = load_run_folder(run_dir)
    log = FeedbackLog(log_path)
    counts = {"episodes": 0, "records": 0, "unreadable": 0}
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
            log.append(record)
        counts["records"] += len(records)
    if llm is not None:
        await llm.aclose()
    return counts
