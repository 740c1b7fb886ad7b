"""One progress style for every long command, on stderr so ``--json`` stays clean.

On a terminal: a rich progress bar. When stderr is not a terminal (a log file, CI, ``nohup``),
a live bar renders nothing until the end, so a long run would look dead for minutes; there
``LineProgress`` writes a plain line at the start, every ``SLEUTH_PROGRESS_SECONDS`` (default
30) and at the end instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr = Console(stderr=True)
DEFAULT_LINE_SECONDS = 30.0


def line_seconds() -> float:
    """Seconds between plain progress lines (``SLEUTH_PROGRESS_SECONDS``; 0 = every update)."""
    try:
        return max(0.0, float(os.environ.get("SLEUTH_PROGRESS_SECONDS", DEFAULT_LINE_SECONDS)))
    except ValueError:
        return DEFAULT_LINE_SECONDS


@dataclass
class LineTask:
    description: str
    total: float | None
    fields: dict[str, Any]
    completed: float = 0
    started: float = field(default_factory=time.monotonic)


class LineProgress:
    """The part of ``rich.progress.Progress`` Sleuth uses, as periodic plain lines."""

    def __init__(self, console: Console, every: float | None = None) -> None:
        self.console = console
        self.every = line_seconds() if every is None else every
        self.tasks: list[LineTask] = []
        self._last = 0.0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks:
            self._line(task, "done" if exc[0] is None else "stopped")

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        self.tasks.append(LineTask(description, total, dict(fields)))
        self._line(self.tasks[-1], "started")
        self._last = time.monotonic()
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self, task_id: int, *, advance: float = 0, total: float | None = None, **fields: Any
    ) -> None:
        task = self.tasks[task_id]
        task.completed += advance
        if total is not None:
            task.total = total
        task.fields.update(fields)
        now = time.monotonic()
        if advance and now - self._last >= self.every:
            self._last = now
            self._line(task)

    def _line(self, task: LineTask, state: str = "") -> None:
        done = f"{task.completed:g}" + (f"/{task.total:g}" if task.total else "")
        if task.total:
            done += f" ({100 * task.completed / task.total:.0f}%)"
        extra = "".join(f" {k} {v}" for k, v in task.fields.items())
        elapsed = time.monotonic() - task.started
        note = f" {state}" if state else ""
        self.console.print(
            f"{task.description}:{note} {done}{extra}, {elapsed:.0f}s elapsed",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def make_progress(*columns: str | ProgressColumn, console: Console = stderr) -> Any:
    """A rich ``Progress`` on a terminal, a ``LineProgress`` otherwise (same calls)."""
    if console.is_terminal:
        return Progress(*columns, console=console, transient=False)
    return LineProgress(console)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; the bar disappears cleanly when the work ends or fails."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with make_progress(*columns) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
        if total is None:
            bar.update(task, total=bar.tasks[0].completed)


def log_line(line: str) -> None:
    """One progress line of a long command on stderr, shown at once even in a log file.

    ``typer.echo`` writes to stdout, which Python block-buffers when it is not a terminal: a
    training run under ``nohup`` showed no step for minutes. Lines may quote model output, so
    they are printed without markup.
    """
    stderr.print(line, markup=False, highlight=False, soft_wrap=True)
