"""What ``sleuth ask`` prints per step: the action, each hit (rank, id, title, score) and what
the model wrote. Everything shown is untrusted (model output, document titles and ids), so it
goes through ``sleuth.display`` and a display failure never ends the episode."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sleuth.display import one_line, safe_markup

if TYPE_CHECKING:
    from rich.console import Console

    from sleuth.agent.trajectory import Step, Trajectory
    from sleuth.search.base import SearchEngine
    from sleuth.types import Document, Hit

MODEL_OUTPUT_CHARS = 300
TITLE_CHARS = 80
ACTION_STYLES = {
    "search": "cyan",
    "follow": "cyan",
    "open": "blue",
    "access": "blue",
    "judge": "magenta",
    "answer": "green",
    "select": "yellow",
    "ask": "yellow",
}


def default_trajectory_path() -> Path:
    """``<cache>/runs/ask/YYYYMMDD.jsonl``: one file a day, independent of the working folder.

    The folder is checked now, before the model loads: an unusable cache is one clear error,
    which names ``--trajectory-out`` (a read-only cache that holds the index and model works
    with it)."""
    from sleuth.errors import SleuthError
    from sleuth.paths import writable_cache_dir

    try:
        folder = writable_cache_dir("runs", "ask")
    except SleuthError as exc:
        raise SleuthError(
            f"{exc}, or save the trajectory elsewhere with --trajectory-out FILE"
        ) from None
    return folder / f"{time.strftime('%Y%m%d')}.jsonl"


class TitleMemo:
    """A search engine wrapper that remembers each hit's title, so the step printer can show
    titles (trajectories keep only ids) without a second lookup."""

    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine
        self.name = engine.name
        self.titles: dict[str, str] = {}

    def _remember(self, hits: list[Hit]) -> list[Hit]:
        for hit in hits:
            self.titles[hit.id] = hit.title
        return hits

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self._remember(self.engine.search(query, k))

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        return [self._remember(hits) for hits in self.engine.search_batch(queries, k)]

    def get(self, doc_id: str) -> Document:
        document = self.engine.get(doc_id)
        self.titles[document.id] = document.title
        return document

    def __len__(self) -> int:
        return len(self.engine)


class StepPrinter:
    """``on_step`` callback: prints one step; never raises (the episode must go on and its
    trajectory must be saved even if the terminal cannot show something)."""

    def __init__(self, console: Console, titles: dict[str, str]) -> None:
        self.console, self.titles = console, titles
        self.steps: list[Step] = []
        self.started = time.time()

    def partial_trajectory(self, question: str, config: dict, model: str) -> Trajectory:
        """What an interrupted episode did so far, as a trajectory (stop reason
        ``interrupted``), so Ctrl-C does not lose the steps already paid for."""
        from sleuth.agent.trajectory import Trajectory

        return Trajectory(
            episode_id=uuid.uuid4().hex[:12],
            question=question,
            stop_reason="interrupted",
            steps=list(self.steps),
            config=config,
            model=model,
            started_at=self.started,
            seconds=time.time() - self.started,
            metadata={"error": "interrupted by the user"},
        )

    def __call__(self, step: Step) -> None:
        self.steps.append(step)
        try:
            self.print_step(step)
        except Exception as exc:  # display only: the run must not die here
            print(
                f"(step {step.index} could not be displayed: {type(exc).__name__})", file=sys.stderr
            )

    def print_step(self, step: Step) -> None:
        colour = ACTION_STYLES.get(step.action, "red")
        action = safe_markup(step.action)
        if step.fresh_context and step.hits:  # a pipeline's fresh prompts read nothing new
            self.console.print(
                f"[dim]step {step.index}: final read, the question again over the "
                f"{len(step.hits)} documents below (seen before)[/dim]"
            )
        self.console.print(
            f"[dim]step {step.index}[/dim] [{colour}]{action}[/{colour}] "
            f"{safe_markup(one_line(step.argument))}"
        )
        if step.error:
            self.console.print(f"  [red]{safe_markup(one_line(step.error))}[/red]")
        if step.action == "ask" and step.observation:  # the user's reply (person or simulated)
            self.console.print(f"  [yellow]{safe_markup(one_line(step.observation))}[/yellow]")
        if step.action == "search" and not step.hits and not step.error:
            self.console.print("  [dim]no hits[/dim]")
        for hit in step.hits:
            seen = "" if hit.new else " (seen)"
            title = one_line(self.titles.get(hit.id, ""), TITLE_CHARS)
            self.console.print(
                f"  {hit.rank}. [bold]{safe_markup(title) or '(untitled)'}[/bold] "
                f"[dim]id {safe_markup(hit.id)} score {hit.score:.2f}{seen}[/dim]"
            )
        if step.model_output.strip():
            wrote = one_line(step.model_output, MODEL_OUTPUT_CHARS)
            who = "reader" if step.role == "reader" else "model"  # Agent(reader=...)
            self.console.print(f"  [dim]{who} wrote: {safe_markup(wrote)}[/dim]")
