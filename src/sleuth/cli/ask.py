"""``sleuth ask``: one question, every step streamed, the trajectory saved."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sleuth.agent.final_read import DEFAULT_DOCUMENTS
from sleuth.cli import agent_options as options
from sleuth.cli import search_options

if TYPE_CHECKING:
    from sleuth.agent import AgentConfig, Trajectory
    from sleuth.llm.base import LLM
    from sleuth.search.base import SearchEngine

# The model a newcomer's `sleuth ask` runs: primed to search (docs/training.md); `--model
# packaged` is the bare SmolLM2-135M.
DEFAULT_ASK_MODEL = "smollm2-135m-primed"


def register(app: typer.Typer) -> None:
    app.command(
        "ask",
        help="Ask the search agent a question; streams its steps and saves the trajectory. "
        f"Defaults: the bundled HotpotQA BM25 index and {DEFAULT_ASK_MODEL} (the packaged "
        "SmolLM2-135M with its shipped priming adapter), run as it was trained: the question "
        "is searched first, then the model searches on and answers.",
    )(ask_command)


def ask_command(
    question: Annotated[str, typer.Argument(help="The question")],
    index: search_options.Index = None,
    search_url: search_options.SearchUrl = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="HF id, local folder, .gguf, a named model (`sleuth model list`; `packaged` = "
            f"bare SmolLM2-135M), or the model name at --llm-url (default: {DEFAULT_ASK_MODEL})",
            show_default=False,
        ),
    ] = None,
    llm_url: options.LlmUrl = None,
    reader: options.Reader = None,
    reader_url: options.ReaderUrl = None,
    format: Annotated[str, typer.Option(help="tags (Search-R1) | json (tool calls)")] = "tags",
    judge: Annotated[
        bool, typer.Option("--judge", help="Enable the judge action (ReSeek)")
    ] = False,
    ask: Annotated[
        bool, typer.Option("--ask", help="Let the agent ask you clarification questions")
    ] = False,
    user: options.User = None,
    user_max_answers: options.UserMaxAnswers = 2,
    intent: Annotated[
        str,
        typer.Option(
            help="With --user: what you meant but left out of QUESTION (the simulated user's "
            "only knowledge)"
        ),
    ] = "",
    gold: Annotated[
        list[str] | None,
        typer.Option(help="With --user: an answer the simulated user must never reveal (repeat)"),
    ] = None,
    select: Annotated[
        bool | None,
        typer.Option(
            "--select/--no-select",
            help="The model only searches and selects documents; the reader (--reader, else the "
            "model) answers from K of them, the selection first (eval's searcher@K), K being the "
            "question's own retrieval depth (--prefetch, else as trained, else --top-k). "
            "Default: on for a model Sleuth trained as a searcher",
            show_default=False,
        ),
    ] = None,
    read_selection_only: Annotated[
        bool | None,
        typer.Option(
            "--read-selection-only/--fill-read",
            help="With --select: the reader reads the selection alone, as s3's does (eval's "
            "searcher_selected@K), or places the selection leaves are filled in reading order "
            "(searcher@K). Default: as the searcher was trained, else filled",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool | None,
        typer.Option(
            "--follow/--no-follow",
            help="With --select: the searcher may also follow links (<follow>N</follow> shows "
            "the documents titled by the names in document N, 0 the question's; eval's "
            "searcher_links@K). Default: as the searcher was trained, else off",
            show_default=False,
        ),
    ] = None,
    # The same budget as `sleuth eval run`: `ask` shows one episode of what eval measures.
    max_turns: options.MaxTurns = 8,
    max_searches: options.MaxSearches = 4,
    min_searches: options.MinSearches = 1,
    top_k: options.TopK = 3,
    prefetch: Annotated[
        int | None,
        typer.Option(
            help="K > 0: search the whole question for the top K before the model's first turn "
            "(eval's agent_rag method; counts as one search; default: as the model was "
            "trained, else 0)",
            show_default=False,
        ),
    ] = None,
    doc_chars: options.DocCharsOrTrained = None,
    max_new_tokens: options.MaxNewTokens = 128,
    untagged_answer: options.UntaggedAnswer = False,
    constrain: options.Constrain = True,
    answer_spans: options.AnswerSpans = False,
    final_read: options.FinalRead = DEFAULT_DOCUMENTS,
    context_budget: options.ContextBudget = 0,
    access: Annotated[
        bool,
        typer.Option(
            "--access",
            help="Also offer the access action: read a whole document page by page "
            "(<access>ID page N</access>; --page-chars characters a page)",
        ),
    ] = False,
    page_chars: Annotated[int, typer.Option(help="Characters per page of --access")] = 1500,
    links: Annotated[
        bool,
        typer.Option(
            "--links",
            help="No agent: eval's links pipeline. The question's best hit, the documents the "
            "question and that hit name (exact-title searches), then its next hits, --top-k in "
            "all, read once by the reader (--reader, else --model); docs/evaluation.md",
        ),
    ] = False,
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
    simulate: search_options.Simulate = None,
    trajectory_out: Annotated[
        Path | None,
        typer.Option(
            help="JSONL file the trajectory is appended to "
            "(default: $SLEUTH_CACHE/runs/ask/YYYYMMDD.jsonl)"
        ),
    ] = None,
) -> None:
    """Run one episode of the agent loop on QUESTION."""
    from rich.console import Console

    from sleuth.agent import Agent, AgentConfig, TrajectoryLog
    from sleuth.agent.show import StepPrinter, TitleMemo, default_trajectory_path
    from sleuth.agent.strategies import run_strategy
    from sleuth.agent.trained_settings import (
        describe,
        fill_in,
        searcher_base_reader,
        trained_as_searcher,
        trained_settings,
        trained_to_follow_links,
        trained_to_read_selection_only,
    )
    from sleuth.display import plural, safe_markup, safe_text
    from sleuth.errors import SleuthError
    from sleuth.evaluate.session import open_reader, reader_label
    from sleuth.llm import load_llm
    from sleuth.search.factory import check_one_source, open_engine

    if not question.strip():
        raise SleuthError("the question is empty; give the question to research")
    user_spec = None
    if user is not None:
        from sleuth.agent.users import parse_user

        user_spec = parse_user(user)
        if ask:
            raise SleuthError("--ask lets you answer, --user a simulated user: choose one")
        if not intent.strip():
            raise SleuthError("--user needs --intent: what the question left out")
        ask = True  # the simulated user answers the ask action
    elif intent or gold:
        raise SleuthError("--intent and --gold are for a simulated user: add --user")
    check_one_source(index, search_url)
    reader_name = reader_label(reader, reader_url)
    if model is None and llm_url is None:
        model = DEFAULT_ASK_MODEL
    trained = trained_settings(model)
    as_trained = []  # a searcher's role, from its training record where no flag says otherwise
    if select is None:
        select = trained_as_searcher(model) and not (judge or ask or links)
        as_trained += ["a searcher (--select)"] if select else []
        if select and reader_name is None and (base := searcher_base_reader(model)):
            reader = reader_name = base  # not the searcher: it was taught to select, not answer
            as_trained += [f"read by its base model {base!r} (--reader to choose)"]
    if read_selection_only is None:
        read_selection_only = select and trained_to_read_selection_only(model)
        as_trained += ["its selection read alone"] if read_selection_only else []
    if follow is None:
        follow = select and trained_to_follow_links(model)
        as_trained += ["following links (--follow)"] if follow else []
    settings = fill_in(
        trained, prefetch_k=prefetch, doc_chars=doc_chars, prompt_example=prompt_example
    )
    actions = (
        ["search", "open"]
        + (["access"] if access else [])
        + (["judge"] if judge else [])
        + (["ask"] if ask else [])
        + ["answer"]
    )
    if select:  # a searcher: RAG's top K first, follow-ups, then the reader reads K documents
        if judge or ask:
            raise SleuthError("--select makes the model a searcher: drop --judge and --ask")
        actions = ["search", "follow", "select"] if follow else ["search", "select"]
        # the read budget K is RAG's depth, as in eval's searcher@K (and its training)
        settings["prefetch_k"] = settings["prefetch_k"] or top_k
        final_read = settings["prefetch_k"]
    elif read_selection_only:
        raise SleuthError("--read-selection-only is a searcher's read: add --select")
    elif follow:
        raise SleuthError("--follow is a searcher's action: add --select")
    if links and (select or judge or ask or access or strategy != "react"):
        raise SleuthError(
            "--links runs a fixed pipeline, no agent: drop --select, --judge, --ask, --user, "
            "--access and --strategy"
        )
    config = AgentConfig(
        action_format=format,
        actions=tuple(actions),
        max_turns=max_turns,
        max_searches=max_searches,
        min_searches=min_searches,
        top_k=top_k,
        **settings,
        max_new_tokens=max_new_tokens,
        untagged_answer=untagged_answer,
        constrain=constrain,
        answer_spans=answer_spans,
        final_read=final_read,
        context_budget=context_budget,
        page_chars=page_chars,
        read_selection_only=read_selection_only,
    )
    plan = options.strategy_plan(  # a budget too small is refused before any work
        config, strategy, branches, beam_width, simulations, call_budget, critic
    )
    out = trajectory_out or default_trajectory_path()
    log = TrajectoryLog(out)  # fails now, before any work, if OUT cannot be created
    console = Console(highlight=False)
    if trained or as_trained:
        how = ", ".join(([describe(trained)] if trained else []) + as_trained)
        console.print(
            f"[dim]{safe_markup(model)} runs as it was trained: {how} (flags override)[/dim]"
        )
    opened = open_engine(index, search_url, simulate=simulate, rerank=rerank, llm_url=llm_url)
    engine = TitleMemo(opened.engine)
    with console.status("loading the model ..."):
        extra = {"constrain_via": constrain_via} if llm_url else {}
        llm = load_llm(model, url=llm_url, backend=backend, **extra)
        reader_llm = open_reader(reader, reader_url, model, llm_url, llm, backend, constrain_via)
    if reader_name:
        console.print(f"[dim]reader: {safe_markup(reader_name)} answers from the documents[/dim]")

    async def ask_person(text: str) -> str:
        prompt = f"[bold yellow]agent asks:[/] {safe_markup(text)}\n> "
        return await asyncio.to_thread(console.input, prompt)

    simulated = None
    if user_spec is not None:
        from sleuth.agent.users import make_user

        user_llm = None
        if user_spec.kind == "llm":
            user_llm = load_llm(user_spec.model, backend=backend) if user_spec.model else llm
        simulated = make_user(
            user_spec, intent, tuple(gold or ()), max_answers=user_max_answers, llm=user_llm
        )
    ask_user = simulated or (ask_person if ask else None)
    agent = Agent(llm, engine, config, ask_user=ask_user, reader=reader_llm)
    if plan.name != "react":
        console.print(
            f"[dim]strategy {plan.name}: up to {plan.budget_for(config)} model calls; the "
            "chosen path's steps are shown when the search ends[/dim]"
        )
    started = time.perf_counter()
    printer = StepPrinter(console, engine.titles)
    try:
        if links:
            trajectory = asyncio.run(run_links(question, llm, engine, config, reader_llm))
            for step in trajectory.steps:
                printer(step)
        else:
            trajectory = asyncio.run(run_strategy(agent, question, plan, on_step=printer))
    except KeyboardInterrupt:  # Ctrl-C: keep the steps done so far
        partial = printer.partial_trajectory(question, config.to_dict(), getattr(llm, "name", ""))
        log.append(partial)
        console.print(
            f"\n[yellow]interrupted after {len(partial.steps)} steps; partial trajectory "
            f"appended to {safe_markup(out)}[/yellow]"
        )
        raise typer.Exit(130) from None
    log.append(trajectory)  # saved before anything else is shown
    error = trajectory.metadata.get("error")
    answer = trajectory.answer if trajectory.answer is not None else "(no answer)"
    console.print(f"\n[bold]answer:[/bold] {safe_markup(answer)}")
    searches = plural(len(trajectory.searches), "search")
    tokens = plural(trajectory.completion_tokens, "token")
    if plan.name != "react":
        meta = trajectory.metadata
        console.print(
            f"[dim]{plan.name}: {len(trajectory.tree)} states, {meta.get('policy_calls')} "
            f"policy and {meta.get('critic_calls')} critic calls of {meta.get('call_budget')}; "
            f"{meta.get('critic_scores', 0)} states scored[/dim]"
        )
    console.print(
        f"[dim]stop: {safe_markup(trajectory.stop_reason)}; {searches}, "
        f"{plural(len(trajectory.steps), 'step')}, {tokens}, "
        f"{time.perf_counter() - started:.1f}s; trajectory appended to "
        f"{safe_markup(out)}[/dim]"
    )
    if trajectory.stop_reason in ("llm_error", "search_error"):
        what = "the model" if trajectory.stop_reason == "llm_error" else "the search engine"
        raise SleuthError(f"{what} failed: {safe_text(error or trajectory.stop_reason)}")


async def run_links(
    question: str, llm: LLM, engine: SearchEngine, config: AgentConfig, reader: LLM | None
) -> Trajectory:
    """One question through eval's ``links`` pipeline (no gold, no answers: nothing scored)."""
    from sleuth.evaluate.benchmarks import BenchmarkQuestion
    from sleuth.evaluate.pipelines import run_pipeline

    asked = BenchmarkQuestion(id="ask", question=question, answers=())
    return await run_pipeline("links", asked, llm, engine, config, reader=reader)
