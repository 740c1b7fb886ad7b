"""The ``sleuth`` command line. Each area registers its own commands; heavy imports stay
inside the command bodies so ``sleuth --help`` is instant."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from typing import Any

import click
import typer

from sleuth.errors import SleuthError

app = typer.Typer(
    name="sleuth",
    help="Build, serve, evaluate and train LLM search agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that define ``register(app)``; each owns its commands.
COMMAND_MODULES = (
    "sleuth.cli.search",  # index, search
    "sleuth.cli.eval_retrieval",  # eval-retrieval
    "sleuth.cli.serve",  # serve
    "sleuth.cli.llm",  # serve-llm
    "sleuth.cli.ask",  # ask
    "sleuth.cli.eval",  # eval, demo
    "sleuth.cli.train",  # train expand, train agent
    "sleuth.cli.export",  # export verl
    "sleuth.cli.view",  # view, feedback simulate, feedback export
    "sleuth.cli.mcp",  # mcp
    "sleuth.cli.synth",  # synth trajectories
    "sleuth.cli.train_sft",  # train sft
    "sleuth.cli.train_retriever",  # train retriever (Promptagator)
    "sleuth.cli.train_simulator",  # train simulator
    "sleuth.cli.train_critic",  # train critic
    "sleuth.cli.synth_questions",  # synth questions
)


def _version(value: bool) -> None:
    if value:
        from sleuth import __version__

        typer.echo(f"sleuth {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit", callback=_version, is_eager=True
    ),
) -> None:
    """Build, serve, evaluate and train LLM search agents."""


def _fold_long_words_in_help() -> None:
    """Make typer's rich help fold a word too long for its column instead of cutting it with
    "…": at 80 columns `eval run --help` lost the benchmark list, URLs and defaults. Typer has
    no setting for it, so its option tables get folding columns and option help folding text;
    a typer without these internals keeps its own rendering."""
    from rich.table import Table
    from rich.text import Text

    try:
        rich_utils = importlib.import_module("typer.rich_utils")
    except ImportError:  # typer without rich: click's plain help wraps by itself
        return
    parameter_help = getattr(rich_utils, "_get_parameter_help", None)
    if parameter_help is None or getattr(rich_utils, "Table", None) is not Table:
        return

    class FoldingTable(Table):
        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            super().add_row(*renderables, **kwargs)
            for column in self.columns:
                column.overflow = "fold"

    def folding_help(**kwargs: Any) -> Any:
        rendered = parameter_help(**kwargs)
        for item in getattr(rendered, "renderables", []):
            if isinstance(item, Text):
                item.overflow = "fold"
        return rendered

    rich_utils.Table = FoldingTable
    rich_utils._get_parameter_help = folding_help


_fold_long_words_in_help()

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # an area not built yet must not break the others
        if exc.name != _name:
            raise
        continue
    _module.register(app)


# A line that starts a list item or an indented block keeps its line break in --help.
_KEEP_BREAK = re.compile(r"^(\s|[-*] |\d+[.)] )")


def reflow(text: str) -> str:
    """Join a docstring's wrapped lines into paragraphs: the help renderer wraps to the
    terminal itself, and kept source line breaks leave ragged half-empty lines."""
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.split("\n")
        joined = lines[0]
        for line in lines[1:]:
            joined += ("\n" if _KEEP_BREAK.match(line) else " ") + line
        paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def _reflow_help(command: click.Command) -> None:
    if command.help:
        command.help = reflow(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


def main() -> None:
    """Entry point: user-fixable errors print one clear line and exit 2, not a traceback."""
    command = typer.main.get_command(app)
    _reflow_help(command)
    try:
        command()
    except SleuthError as exc:
        from sleuth.display import safe_text  # messages may quote untrusted text

        typer.secho(f"error: {safe_text(exc)}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
