"""Issue 33 item 18: what ``--help`` says. Real ``sleuth`` processes at a real terminal width."""

from __future__ import annotations

import os
import re

import typer
from serve_process import sleuth

from sleuth.cli.main import app
from sleuth.evaluate.demo import DEMO_METHODS, DEMO_MODEL


def help_text(*command: str, columns: int = 100) -> str:
    done = sleuth(*command, "--help", env={**os.environ, "COLUMNS": str(columns)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_demo_is_described_by_the_methods_and_model_it_runs() -> None:
    """`sleuth --help` and `sleuth demo --help` named "agent+judge" and "the packaged model"
    while the demo runs closed_book, rag, agent and agent_rag with the primed model."""
    for text in (help_text(), help_text("demo")):
        assert "agent+judge" not in text
    demo = flat(help_text("demo", columns=200))
    assert all(method in demo for method in DEMO_METHODS), demo
    assert DEMO_MODEL in demo


def test_ask_help_does_not_send_the_reader_to_itself() -> None:
    assert "sleuth ask --help" not in flat(help_text("ask", columns=200))


def _help_column(text: str) -> str:
    """The options table's last column, whitespace removed: folded words join up again."""
    lines = text.splitlines()
    first = next(line for line in lines if "--out" in line)
    start = first.index("Run folder")
    panel = [line for line in lines if line.startswith("│")]
    return "".join("".join(line[start:].rstrip(" │").split()) for line in panel)


def test_eval_run_help_at_80_columns_keeps_every_word_of_every_option() -> None:
    """At 80 columns rich cut long words with "…": the benchmark list ("hotpotqa-1100[:tra…"),
    the default methods and URLs were lost."""
    text = help_text("eval", "run", columns=80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    column = _help_column(text)
    command = typer.main.get_command(app).commands["eval"].commands["run"]  # type: ignore[attr-defined]
    for param in command.params:
        if param.help:
            assert re.sub(r"\s", "", param.help) in column, param.name
        if param.default not in (None, False, True, "") and param.show_default is not False:
            assert f"[default:{param.default}]".replace(" ", "") in column, param.name
