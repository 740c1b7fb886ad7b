"""``sleuth eval run | report | compare`` and ``sleuth demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.agent.final_read import DEFAULT_DOCUMENTS
from sleuth.cli import agent_options as options
from sleuth.cli import search_options

eval_app = typer.Typer(
    help="Evaluate search agents on QA benchmarks: run, report, compare.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
    app.command(
        "demo",
        help="Build the bundled HotpotQA BM25 index, compare closed_book / rag / links / "
        "searcher_links@3 / agent / agent_rag on up to 100 questions with smollm2-135m-primed "
        "(the packaged SmolLM2-135M with its shipped priming adapter; in searcher_links@3 the "
        "shipped searcher smollm2-135m-searcher searches and selects, and it reads), and write "
        "a report.",
    )(demo_command)


@eval_app.command("run")
def run_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumed if it exists)")],
    benchmark: Annotated[
        str,
        typer.Option(
            help="hotpotqa-1100[:train|dev|test], hotpotqa-500, 2wiki-500, musique-500, "
            "bamboogle, or a file: FlashRAG JSONL (id, question, golden_answers), official "
            "HotpotQA / 2WikiMultihopQA JSON, MuSiQue JSONL/JSON"
        ),
    ] = "hotpotqa-1100",
    qrels: Annotated[
        str | None,
        typer.Option(
            help="Gold evidence by document id: BEIR qrels .tsv / folder, keyed by question id"
        ),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            help="Index folder built by `sleuth index`, or 'bundled' for the bundled HotpotQA "
            "BM25 index (without --index or --search-url only closed_book can run)"
        ),
    ] = None,
    search_url: search_options.SearchUrl = None,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated: closed_book, rag, agent, agent_judge, agent_rag, agent_ask, "
            "agent_rag_ask (with --user); baselines "
            "rag@K (RAG reading K documents), ircot, iter_retgen, self_ask, links; ceiling oracle "
            "(docs/evaluation.md, 'Baselines and ceilings')"
        ),
    ] = "closed_book,rag,agent,agent_judge",
    n: Annotated[int, typer.Option("-n", help="Number of questions (0 = all)")] = 30,
    seeds: Annotated[int, typer.Option(help="Seeds per question (CI over seeds if > 1)")] = 1,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: a served model name with --llm-url, else a local model spec "
            "(default: the packaged SmolLM2-135M)"
        ),
    ] = None,
    llm_url: options.LlmUrl = None,
    reader: options.Reader = None,
    reader_url: options.ReaderUrl = None,
    searcher: Annotated[
        str | None,
        typer.Option(
            help="A local model the searcher methods (searcher@K, searcher_links@K) search with "
            "instead of --model, e.g. smollm2-135m-searcher; --reader (else --model) answers "
            "for it, so one run compares it with rag@K read by the same model"
        ),
    ] = None,
    judge_llm: Annotated[
        str | None,
        typer.Option(help="Also grade answers with this model as a judge ('packaged' = SmolLM2)"),
    ] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server for the judge model")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Episodes in flight at once")] = 2,
    top_k: options.TopK = 3,
    max_turns: options.MaxTurns = 8,
    max_searches: options.MaxSearches = 4,
    min_searches: options.MinSearches = 1,
    max_new_tokens: options.MaxNewTokens = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy)")] = 0.0,
    doc_chars: options.DocCharsOrTrained = None,
    untagged_answer: options.UntaggedAnswer = False,
    constrain: options.Constrain = True,
    answer_spans: options.AnswerSpans = False,
    final_read: options.FinalRead = DEFAULT_DOCUMENTS,
    context_budget: options.ContextBudget = 0,
    prompt_example: options.PromptExampleOrTrained = None,
    strategy: options.Strategy = "react",
    branches: options.Branches = 3,
    beam_width: options.BeamWidth = 2,
    simulations: options.Simulations = 12,
    call_budget: options.CallBudget = 0,
    critic: options.CriticOption = "judge",
    backend: options.Backend = "auto",
    constrain_via: options.ConstrainVia = "auto",
    rerank: search_options.Rerank = None,
    report: Annotated[bool, typer.Option(help="Write report.json/html at the end")] = True,
    simulate: search_options.Simulate = None,
    user: options.User = None,
    user_max_answers: options.UserMaxAnswers = 2,
    full_intent: Annotated[
        bool,
        typer.Option(
            "--full-intent",
            help="Ask each question as its original_question (a `synth ambiguous` benchmark): "
            "the ceiling of a clarification run",
        ),
    ] = False,
    time_budget: Annotated[
        float | None,
        typer.Option(help="Start no episode after this many seconds (resume later to finish)"),
    ] = None,
) -> None:
    """Run every question x method x seed, appending to OUT/results.jsonl (resumable)."""
    import time

    from sleuth.agent.trained_settings import (
        describe,
        fill_in,
        trained_as_searcher,
        trained_settings,
        trained_to_follow_links,
        trained_to_read_selection_only,
    )
    from sleuth.display import safe_markup
    from sleuth.errors import SleuthError
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.evaluate.methods import base_method, eval_budget, parse_methods
    from sleuth.evaluate.runlock import run_lock
    from sleuth.evaluate.runner import RunSettings, check_run
    from sleuth.evaluate.session import execute, open_llm, open_reader, reader_label
    from sleuth.progress import stderr
    from sleuth.search.factory import check_one_source, open_engine

    method_names = parse_methods(methods)
    if searcher and not any(base_method(m) == "searcher" for m in method_names):
        raise SleuthError(
            "--searcher searches for the searcher methods only: add searcher@K or "
            "searcher_links@K to --methods"
        )
    reader_name = reader_label(reader, reader_url)
    if seeds < 1:
        raise SleuthError("--seeds must be at least 1")
    check_one_source(index, search_url)
    if llm_url and not model:  # record (and ask for) what the server serves, not "packaged"
        from sleuth.llm.openai_http import served_model

        model = served_model(llm_url)
        stderr.print(
            f"[dim]model: {safe_markup(model)}, the one model {safe_markup(llm_url)} serves[/dim]"
        )
    if seeds > 1 and temperature == 0:
        stderr.print("[yellow]note: with --temperature 0 every seed decodes the same way[/yellow]")
    gold = None
    if qrels:
        from sleuth.corpus import load_qrels

        gold = load_qrels(qrels)
    bench = load_benchmark(benchmark, limit=n or None, qrels=gold)
    user_spec = None
    if user is not None:
        from sleuth.agent.users import parse_user

        user_spec = parse_user(user)
        if user_max_answers < 0:
            raise SleuthError("--user-max-answers cannot be negative")
        if not any(m.endswith("_ask") for m in method_names):
            stderr.print("[yellow]note: --user answers only the *_ask methods' questions[/yellow]")
    questions = bench.questions
    if full_intent:
        from sleuth.evaluate.clarify import with_full_intent

        questions = with_full_intent(questions)
    opened = open_engine(
        index,
        search_url,
        simulate=simulate,
        rerank=rerank,
        default=None,  # no engine: closed-book methods only
        questions=questions,
        llm_url=llm_url,
    )
    engine, manifest, search_label = opened.engine, opened.manifest, opened.label
    warn_unmatched_evidence(bench, engine)
    trained = trained_settings(model)
    if shown := {k: v for k, v in trained.items() if k != "prefetch_k"}:
        stderr.print(f"[dim]{safe_markup(model)} runs as it was trained: {describe(shown)}[/dim]")
    if trained_as_searcher(model):
        if not any(base_method(m).startswith("searcher") for m in method_names):
            which = (
                "the searcher_selected@K method (its reader read the selection alone)"
                if trained_to_read_selection_only(model)
                else "the searcher_links@K method (it follows links)"
                if trained_to_follow_links(model)
                else "the searcher@K and searcher_selected@K methods"
            )
            stderr.print(
                f"[dim]{safe_markup(model)} was trained as a searcher: {which}, with --reader[/dim]"
            )
    elif trained.get("prefetch_k") and "agent_rag" not in method_names:
        stderr.print(
            f"[dim]{safe_markup(model)} was primed to search after the question's own retrieval: "
            "the agent_rag method[/dim]"
        )
    budget = eval_budget(
        top_k=top_k,
        max_turns=max_turns,
        max_searches=max_searches,
        min_searches=min_searches,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        untagged_answer=untagged_answer,
        constrain=constrain,
        answer_spans=answer_spans,
        final_read=final_read,
        context_budget=context_budget,
        **fill_in(trained, doc_chars=doc_chars, prompt_example=prompt_example),
    )
    plan = options.strategy_plan(  # a budget too small is refused before any work
        budget, strategy, branches, beam_width, simulations, call_budget, critic
    )
    judge_label = f"{judge_llm}@{judge_url}" if judge_llm and judge_url else judge_llm
    settings = RunSettings(
        benchmark=benchmark,
        methods=method_names,
        seeds=list(range(seeds)),
        budget=budget,
        limit=n or None,
        concurrency=concurrency,
        model=model or "packaged",
        llm_url=llm_url,
        search=search_label,
        judge=judge_label,
        reader=reader_name,
        searcher=searcher,
        user=user_spec.label if user_spec else None,
        user_max_answers=user_max_answers if user_spec else None,
        full_intent=True if full_intent else None,
        strategy=None if plan.name == "react" else plan.to_dict(),
    )
    check_run(out, settings, engine is not None)  # before the (slow) model load
    if not llm_url:
        from sleuth.llm.models import check_model_spec

        check_model_spec(model)  # an unknown --model: before the folder, an export or a download
    if searcher:
        from sleuth.llm.models import check_model_spec

        check_model_spec(searcher)
    if time_budget is not None and time_budget <= 0:
        raise SleuthError("--time-budget must be a positive number of seconds")
    with run_lock(out):  # refuse a second run on this folder before loading anything
        try:
            llm = open_llm(model, llm_url, backend, constrain_via)
            reader_llm = open_reader(
                reader, reader_url, model or "packaged", llm_url, llm, backend, constrain_via
            )
            searcher_llm = open_llm(searcher, None, backend, constrain_via) if searcher else None
            judge = None
            if judge_llm:
                same = judge_llm == (model or "packaged") and judge_url == llm_url
                judge = (
                    llm
                    if same
                    else open_llm(None if judge_llm == "packaged" else judge_llm, judge_url)
                )
            deadline = time.monotonic() + time_budget if time_budget else None
            users = None
            if user_spec is not None:
                from sleuth.evaluate.clarify import user_factory

                user_llm = None
                if user_spec.kind == "llm":
                    user_llm = open_llm(user_spec.model, None) if user_spec.model else llm
                users = user_factory(user_spec, user_max_answers, user_llm)
            outcome, _, _ = execute(
                out,
                settings,
                questions,
                llm,
                engine,
                judge,
                manifest,
                write=report,
                deadline=deadline,
                reader=reader_llm,
                user=users,
                searcher=searcher_llm,
            )
            if outcome.all_failed:  # a table of zeros is no result: say why, and fail
                raise SleuthError(
                    f"all {outcome.ran} episodes of this run failed; the first: "
                    f"{outcome.first_error} "
                    f"(every error is in {out / 'results.jsonl'})"
                )
        except KeyboardInterrupt:
            stderr.print(
                f"\n[yellow]interrupted; re-run the same command to resume (results so far "
                f"are kept in {safe_markup(out)})[/yellow]"
            )
            raise typer.Exit(130) from None


@eval_app.command("report")
def report_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `sleuth eval run`")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """(Re)write RUN/report.json and RUN/report.html from the stored results and print the
    summary; when the run has rag, each other method against it, paired question by question."""
    from sleuth.display import safe_markup
    from sleuth.evaluate.report import build_report, write_report
    from sleuth.evaluate.session import (
        print_clarification,
        print_versus,
        summary_legend,
        summary_table,
        wide_console,
    )
    from sleuth.progress import stderr

    json_path, html_path = write_report(run)
    report = build_report(run)
    if as_json:
        typer.echo(json.dumps(report["methods"], indent=2))
    else:
        console = wide_console()
        console.print(summary_table(report["methods"], str(report["benchmark"])))
        console.print(summary_legend(), markup=False, highlight=False, style="dim")
        print_clarification(console, report["methods"])
        print_versus(console, report["results"], report["best_rag"])
    stderr.print(f"wrote {safe_markup(json_path)} and {safe_markup(html_path)}")


@eval_app.command("compare")
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="Baseline run folder")],
    run_b: Annotated[Path, typer.Argument(help="Run folder compared against the baseline")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON")] = False,
) -> None:
    """Per method and metric: A, B, B - A and its 95% paired-bootstrap interval (* = excludes 0)
    and p, the two-sided paired-bootstrap p-value of "no difference"; then how the runs differ."""
    from rich.table import Table
    from rich.text import Text

    from sleuth.display import safe_text
    from sleuth.errors import SleuthError
    from sleuth.evaluate.compare import compare_runs, config_differences
    from sleuth.evaluate.session import paired_cells, wide_console

    rows = compare_runs(run_a, run_b)
    if not rows:
        raise SleuthError(f"{run_a} and {run_b} share no (method, question) results to compare")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = wide_console()
    table = Table(title=Text(safe_text(f"B = {run_b}  vs  A = {run_a}")))
    for column in ("method", "metric", "questions", "A", "B", "B - A", "95% CI", "p"):
        table.add_column(column, justify="left" if column in ("method", "metric") else "right")
    for row in rows:
        table.add_row(*paired_cells(row))
    console.print(table)
    console.print(COMPARE_LEGEND, highlight=False, markup=False)
    differences = config_differences(run_a, run_b)
    console.print(
        "settings that differ: " + ("; ".join(differences) if differences else "none"),
        highlight=False,
        markup=False,
    )


COMPARE_LEGEND = (
    "questions: answered in both runs (seeds averaged); B - A: mean paired difference; "
    "95% CI: paired bootstrap over those questions (5,000 resamples), * = excludes 0; "
    "p: two-sided bootstrap p-value for 'no difference' (how often a resampled difference "
    "falls on the other side of 0, doubled); small p with few questions is still weak evidence."
)


def demo_command(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/demo-<time>)")
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Number of questions per method")] = 100,
    concurrency: Annotated[int | None, typer.Option(help="Episodes in flight at once")] = None,
    reader: options.Reader = None,
    reader_url: options.ReaderUrl = None,
) -> None:
    """The whole pipeline on bundled data, offline, within 15 minutes on 2 CPU cores (no new
    episode starts after the deadline; the report covers what finished)."""
    from sleuth.evaluate.demo import run_demo

    run_demo(out, n=n, concurrency=concurrency, reader=reader, reader_url=reader_url)


def warn_unmatched_evidence(bench: object, engine: object, sample: int = 200) -> None:
    """Say so when gold evidence names ids the index does not hold (recall would read 0)."""
    from sleuth.display import safe_markup
    from sleuth.errors import DocumentNotFound
    from sleuth.evaluate.benchmarks import unmatched_evidence
    from sleuth.progress import stderr

    questions = getattr(bench, "questions", [])[:sample]
    if engine is None or not any(q.gold_evidence for q in questions):
        return

    def has_id(doc_id: str) -> bool:
        try:
            engine.get(doc_id)  # type: ignore[attr-defined]
        except DocumentNotFound:
            return False
        return True

    missing, examples = unmatched_evidence(questions, has_id)
    if missing:
        total = sum(len(q.gold_evidence) for q in questions)
        stderr.print(
            f"[yellow]warning: {missing} of {total} gold evidence items (first {len(questions)} "
            f"questions) name no document in the index, e.g. {safe_markup(examples)}; evidence "
            "recall counts them as missed. Index the corpus the questions come from, or give gold "
            "by id with --qrels.[/yellow]"
        )
