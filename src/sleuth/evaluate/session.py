"""Glue shared by ``sleuth eval run`` and ``sleuth demo``: open the models, run the evaluation
under a progress bar with a running score, and print the summary table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.runner import EvaluationRunner, RunOutcome, RunSettings
from sleuth.evaluate.summary import running_mean

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from sleuth.evaluate.clarify import UserFactory
    from sleuth.llm.base import LLM
    from sleuth.search.base import SearchEngine


def open_llm(
    model: str | None, url: str | None, backend: str = "auto", constrain_via: str = "auto"
) -> LLM:
    """The packaged SmolLM2 in-process when no model is named, else an HTTP/served model."""
    from sleuth.llm import load_llm

    if url is not None:
        return load_llm(model, url=url, constrain_via=constrain_via)
    return load_llm(model, backend=backend)


def reader_label(reader: str | None, reader_url: str | None) -> str | None:
    """How a run records its reader (``RunSettings.reader``): the spec, ``SPEC@URL`` when
    served; None without one. ``--reader-url`` needs ``--reader``, the served model's name."""
    from sleuth.errors import SleuthError

    if reader_url and not reader:
        raise SleuthError("--reader-url needs --reader: the name of the model it serves")
    if not reader:
        return None
    return f"{reader}@{reader_url}" if reader_url else reader


def open_reader(
    reader: str | None,
    reader_url: str | None,
    model: str | None,
    llm_url: str | None,
    llm: LLM,
    backend: str = "auto",
    constrain_via: str = "auto",
) -> LLM | None:
    """The reader model (``--reader``, ``--reader-url``), opened as ``open_llm`` opens the
    model; None without one; ``llm`` itself when the reader is the model (same spec and URL),
    so one model is never loaded twice."""
    if reader_label(reader, reader_url) is None:
        return None
    if reader == model and reader_url == llm_url:
        return llm
    return open_llm(reader, reader_url, backend, constrain_via)


def run_with_progress(
    run_dir: Path,
    settings: RunSettings,
    questions: list[BenchmarkQuestion],
    llm: LLM,
    engine: SearchEngine | None,
    *,
    judge_llm: LLM | None = None,
    index_manifest: dict[str, Any] | None = None,
    deadline: float | None = None,
    reader: LLM | None = None,
    user: UserFactory | None = None,
    searcher: LLM | None = None,
) -> RunOutcome:
    """Run the evaluation with a rich bar showing done/total and the running EM / cover-EM."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from sleuth.progress import make_progress, stderr

    records: list[dict[str, Any]] = []
    columns = [
        TextColumn("[bold]evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "EM {task.fields[em]}  cover-EM {task.fields[cover]}  failed {task.fields[failed]}"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with make_progress(*columns) as bar:  # plain periodic lines when stderr is a log file
        task = bar.add_task("evaluating", total=None, em="–", cover="–", failed=0)

        def on_result(record: dict[str, Any]) -> None:
            records.append(record)
            em, cover = running_mean(records, "em"), running_mean(records, "cover_em")
            bar.update(
                task,
                advance=1,
                em=f"{em:.3f}" if em is not None else "–",
                cover=f"{cover:.3f}" if cover is not None else "–",
                failed=sum(1 for r in records if r.get("error")),
            )

        runner = EvaluationRunner(
            run_dir,
            settings,
            questions,
            llm,
            engine,
            judge_llm=judge_llm,
            index_manifest=index_manifest,
            on_result=on_result,
            deadline=deadline,
            reader=reader,
            user=user,
            searcher=searcher,
        )
        done = len(runner.results.keys())
        bar.update(task, total=max(0, len(runner.pending(runner.results.keys()))))

        async def main() -> RunOutcome:
            try:
                return await runner.run()
            finally:
                await llm.aclose()
                if judge_llm is not None and judge_llm is not llm:
                    await judge_llm.aclose()
                if reader is not None and reader is not llm and reader is not judge_llm:
                    await reader.aclose()
                if searcher is not None and searcher not in (llm, reader, judge_llm):
                    await searcher.aclose()

        outcome = asyncio.run(main())
    if done:
        stderr.print(f"resumed: {outcome.skipped} episodes were already done")
    return outcome


def wide_console() -> Console:
    """Stdout console; when piped (not a terminal) wide enough that the table never wraps."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=180)


def summary_table(summary: dict[str, dict[str, Any]], title: str) -> Table:
    """Methods as rows; mean [95% CI] for the headline metrics."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from sleuth.display import safe_text
    from sleuth.metrics import SHORT_ANSWER_WORDS

    has_judge = any(d["metrics"]["judge"]["mean"] is not None for d in summary.values())
    table = Table(title=Text(safe_text(title)), box=box.SIMPLE_HEAD, padding=(0, 1))
    short = f"cover≤{SHORT_ANSWER_WORDS}w"
    columns = ["method", "n", "EM", "F1", "cover-EM", short, "words", "no ans.", "judge"]
    columns += [
        "recall",
        "read rec.",
        "suff.",
        "k.use",
        "searches",
        "read",
        "calls",
        "s/q",
        "failed",
    ]
    for column in columns:
        if column == "judge" and not has_judge:
            continue
        table.add_column(column, justify="left" if column == "method" else "right")

    def cell(data: dict[str, Any], name: str, digits: int = 3, ci: bool = True) -> str:
        m = data["metrics"][name]
        if m["mean"] is None:
            return "–"
        text = f"{m['mean']:.{digits}f}"
        if ci and m["low"] is not None:
            text += f" ±{(m['high'] - m['low']) / 2:.{digits}f}"
        return text

    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    for method, data in summary.items():
        judge = [cell(data, "judge")] if has_judge else []
        table.add_row(
            Text(safe_text(method)),
            str(data["episodes"]),
            cell(data, "em"),
            cell(data, "f1"),
            cell(data, "cover_em"),
            cell(data, "cover_em_short"),
            cell(data, "answer_words", 1, ci=False),
            cell(data, "no_answer", ci=False),
            *judge,
            cell(data, "evidence_recall", ci=False),
            cell(data, "read_recall", ci=False),
            rate(data["factorised"]["search_sufficiency"]),
            rate(data["factorised"]["knowledge_utilisation"]),
            cell(data, "searches", 2, ci=False),
            cell(data, "documents_read", 1, ci=False),
            cell(data, "model_calls", 1, ci=False),
            cell(data, "seconds", 1, ci=False),
            str(data["failures"]),
        )
    return table


def print_clarification(console: Console, summary: dict[str, dict[str, Any]]) -> None:
    """The clarification table (``sleuth.evaluate.clarify``), when the questions say which are
    ambiguous: asking per method, and F1 / evidence recall / turns on each side."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from sleuth.display import safe_text
    from sleuth.evaluate.clarify import CLARIFICATION_LABELS

    rows = {m: d["clarification"] for m, d in summary.items() if d.get("clarification")}
    if not rows:
        return
    table = Table(title="clarification (ambiguous vs clear questions)", box=box.SIMPLE_HEAD)
    table.add_column("method")
    table.add_column("amb./clear", justify="right")
    for label in CLARIFICATION_LABELS.values():
        table.add_column(label, justify="right")
    for method, data in rows.items():
        cells = [
            "–" if data[key] is None else f"{data[key]:.{2 if 'turns' in key else 3}f}"
            for key in CLARIFICATION_LABELS
        ]
        episodes = f"{data['ambiguous_episodes']}/{data['clear_episodes']}"
        table.add_row(Text(safe_text(method)), episodes, *cells)
    console.print(table)
    replies = {m: d["user_replies"] for m, d in rows.items() if d["user_replies"]}
    for method, counts in replies.items():
        said = ", ".join(f"{name} {n}" for name, n in counts.items())
        console.print(safe_text(f"{method}: user replies: {said}"), markup=False, style="dim")


def summary_legend() -> str:
    """What the less obvious columns of ``summary_table`` mean (printed under it)."""
    from sleuth.metrics import SHORT_ANSWER_WORDS

    n = SHORT_ANSWER_WORDS
    return (
        f"cover≤{n}w: cover-EM counting only answers of at most {n} words (cover-EM also "
        "credits long sentences that name both candidates); words: mean answer length; "
        "no ans.: share of episodes that ended without an answer (invalid actions, budget): "
        "they score 0 but are not wrong answers; read: documents in front of the scored "
        "answer; calls: model calls (searcher and reader). See docs/evaluation.md."
    )


def paired_cells(row: dict[str, Any]) -> list[Text | str]:
    """One ``paired_difference`` row (with its method and metric) as table cells: method,
    metric, questions, A, B, B - A (* when its interval excludes 0), the interval, p."""
    from rich.text import Text

    from sleuth.display import safe_text
    from sleuth.evaluate.summary import LABELS

    return [
        Text(safe_text(row["method"])),
        LABELS.get(row["metric"], row["metric"]),
        str(row["questions"]),
        f"{row['a']:.3f}",
        f"{row['b']:.3f}",
        f"{row['diff']:+.3f}" + (" *" if row["significant"] else ""),
        f"[{row['low']:+.3f}, {row['high']:+.3f}]",
        f"{row['p_value']:.3f}",
    ]


def versus_tables(versus: dict[str, Any]) -> list[Table]:
    """The paired comparison against the baseline, then each searching method's F1
    difference split by the evidence both found (``sleuth.evaluate.versus``). Method names
    come from the run folder, so every title and header is plain text, never markup."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from sleuth.display import safe_text

    base = safe_text(versus["baseline"])
    chosen = f" ({safe_text(versus['chosen'])})" if versus.get("chosen") else ""
    paired = Table(
        title=Text(f"each method against {base}{chosen}, paired over the same questions"),
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for column in ("method", "metric", "questions", base, "method's", "difference", "95% CI", "p"):
        paired.add_column(
            Text(column), justify="left" if column in ("method", "metric") else "right"
        )
    for row in versus["rows"]:
        paired.add_row(*paired_cells(row))
    tables = [paired]
    for method, rows in versus["shifts"].items():
        name = safe_text(method)
        shifts = Table(
            title=Text(
                f"{name} - {base} F1, by the gold evidence each {rows[0].get('evidence', 'found')}"
            ),
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        evidence = f"evidence {base} -> {name}"
        for column in (evidence, "questions", f"F1 {base}", f"F1 {name}", "each", "of total"):
            shifts.add_column(Text(column), justify="left" if column == evidence else "right")
        for row in rows:
            shifts.add_row(
                f"{row['baseline_evidence']} -> {row['method_evidence']}",
                str(row["questions"]),
                f"{row['baseline_f1']:.3f}",
                f"{row['method_f1']:.3f}",
                f"{row['diff']:+.3f}",
                f"{row['share']:+.3f}",
            )
        tables.append(shifts)
    return tables


VERSUS_LEGEND = (
    "difference: method minus baseline, mean over the questions both answered; 95% CI: paired "
    "bootstrap (5,000 resamples), * = excludes 0; p: two-sided bootstrap p-value. Evidence "
    "none / part / all: how many of a question's gold paragraphs were among the documents the "
    "method's scored answer call read (read recall; runs scored before it: its searches found); "
    "each: mean F1 difference in that group; of total: the group's part of the overall "
    "difference (the column adds up to it)."
)


def print_versus(
    console: Console, records: list[dict[str, Any]], best: dict[str, Any] | None = None
) -> None:
    """Print ``versus_tables`` and their legend when the run has RAG (``best``: the run's best
    RAG depth, ``summary.best_rag``) and another method."""
    from sleuth.evaluate.versus import versus_baseline

    versus = versus_baseline(records, best)
    if versus is None:
        return
    for table in versus_tables(versus):
        console.print(table)
    console.print(VERSUS_LEGEND, markup=False, highlight=False, style="dim")


def execute(
    out: Path,
    settings: RunSettings,
    questions: list[BenchmarkQuestion],
    llm: LLM,
    engine: SearchEngine | None,
    judge_llm: LLM | None,
    manifest: dict[str, Any] | None,
    *,
    write: bool = True,
    deadline: float | None = None,
    reader: LLM | None = None,
    user: UserFactory | None = None,
    searcher: LLM | None = None,
) -> tuple[RunOutcome, dict[str, dict[str, Any]], Path | None]:
    """Run, print the summary table, and write the report; returns what a caller may show."""
    from sleuth.display import safe_markup, safe_text
    from sleuth.evaluate.report import load_run, write_report
    from sleuth.evaluate.summary import best_rag, best_rag_line, summarize
    from sleuth.progress import stderr

    outcome = run_with_progress(
        out,
        settings,
        questions,
        llm,
        engine,
        judge_llm=judge_llm,
        index_manifest=manifest,
        deadline=deadline,
        reader=reader,
        user=user,
        searcher=searcher,
    )
    config, records = load_run(out)
    summary = summarize(records, config["methods"])
    console = wide_console()
    console.print(summary_table(summary, f"{settings.benchmark} ({len(questions)} questions)"))
    console.print(summary_legend(), markup=False, highlight=False, style="dim")
    print_clarification(console, summary)
    best = best_rag(summary, settings.budget.top_k)
    if line := best_rag_line(best):
        console.print(line, markup=False, highlight=False)
    if settings.reader:
        reader = safe_text(f"reader: {settings.reader}")
        console.print(reader, markup=False, highlight=False, style="dim")
    if settings.searcher:
        who = f"searcher: {settings.searcher} (the searcher methods; {settings.model} reads)"
        if settings.reader:
            who = f"searcher: {settings.searcher} (the searcher methods)"
        console.print(safe_text(who), markup=False, highlight=False, style="dim")
    print_versus(console, records, best)
    stderr.print(
        f"{outcome.ran} episodes run ({outcome.failed} failed), {outcome.skipped} already done, "
        f"in {outcome.seconds:.0f}s; results in {safe_markup(out)}"
    )
    if outcome.unstarted:
        stderr.print(
            f"[yellow]time budget reached: {outcome.unstarted} episodes not started; run the "
            "same command with the same --out to finish them[/yellow]"
        )
    html = None
    if write and records:
        _, html = write_report(out)
        stderr.print(f"report: {safe_markup(html)}")
    return outcome, summary, html
