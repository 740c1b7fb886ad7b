"""``sleuth view`` (the trajectory viewer and user debug mode) and ``sleuth feedback
simulate | export`` (shadow user, offline update)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import search_options
from sleuth.errors import SleuthError

DEFAULT_PORT = 8766  # `sleuth mcp --transport http` has 8765

feedback_app = typer.Typer(
    help="Feedback on trajectories: simulate a user (shadow user mode), export training data.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command(
        "view",
        help="Browse evaluation runs in a local web page: metrics, filterable episodes, each "
        "step with its hits (gold marked), methods side by side; edit a step and replay it "
        "(needs --index/--search-url and --model/--llm-url); thumbs and edits go to a "
        "feedback log, never into the run.",
    )(view_command)
    app.add_typer(feedback_app, name="feedback")


def default_feedback_path(run_dirs: list[Path]) -> Path:
    """Beside the (first) run, never inside it: RUN_DIR/../feedback.jsonl."""
    return run_dirs[0].expanduser().resolve().parent / "feedback.jsonl"


def _lazy_llm(model: str | None, llm_url: str | None):
    if model is None and llm_url is None:
        return None
    from sleuth.evaluate.session import open_llm
    from sleuth.llm.models import check_model_spec

    if llm_url is None:
        check_model_spec(None if model == "packaged" else model)  # at start, not on first replay

    return lambda: open_llm(None if model == "packaged" else model, llm_url)


def view_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `sleuth eval run`")],
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1 (0: any free port, shown at start)")
    ] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Interface; loopback only (no login)")] = "127.0.0.1",
    index: Annotated[Path | None, typer.Option(help="Index folder, for replay")] = None,
    search_url: search_options.SearchUrl = None,  # for replay, instead of --index
    model: Annotated[
        str | None,
        typer.Option(
            help="Model for replay: 'packaged' (SmolLM2), a local spec, or the name at "
            "--llm-url; loaded on the first replay"
        ),
    ] = None,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server for replay")] = None,
    feedback: Annotated[
        Path | None, typer.Option(help="Feedback log (default RUN_DIR/../feedback.jsonl)")
    ] = None,
) -> None:
    """Serve the viewer until Ctrl-C."""
    from sleuth.cli.serve import bind_socket, is_loopback, run_on_socket
    from sleuth.display import safe_markup
    from sleuth.http_guard import HostAllowList
    from sleuth.progress import stderr
    from sleuth.search.factory import open_engine
    from sleuth.view.app import create_app
    from sleuth.view.runs import load_runs
    from sleuth.view.state import ViewerState

    if not is_loopback(host):
        raise SleuthError(
            f"refusing to bind {host}: the viewer has no login and shows every trajectory; "
            "bind 127.0.0.1 and tunnel (ssh -L) if you need it elsewhere"
        )
    sock = bind_socket(host, port)
    loaded = load_runs(runs)
    engine = open_engine(index, search_url, default=None).engine  # None: replay off
    log = feedback or default_feedback_path(runs)
    state = ViewerState(loaded, log, engine=engine, llm=_lazy_llm(model, llm_url))
    episodes = sum(len(r.episodes) for r in loaded.values())
    stderr.print(
        f"{len(loaded)} runs, {episodes} episodes; "
        f"feedback log {safe_markup(state.feedback.path)}; "
        f"replay {'on' if state.can_replay else 'off (needs --index/--search-url and a model)'}"
    )
    app = create_app(state, allowed_hosts=HostAllowList.for_bind(host))
    shown_host = f"[{host}]" if ":" in host else host
    stderr.print(f"open http://{shown_host}:{sock.getsockname()[1]}/")
    run_on_socket(app, sock)


@feedback_app.command("simulate")
def simulate_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `sleuth eval run`")],
    shadow: Annotated[
        str,
        typer.Option(
            help="llm: a model reviews each episode given the gold; rules: no model, "
            "gold evidence decides (fast, offline)"
        ),
    ] = "llm",
    model: Annotated[
        str | None, typer.Option(help="Reviewer model (default: packaged SmolLM2) or its name")
    ] = None,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server")] = None,
    feedback: Annotated[
        Path | None, typer.Option(help="Feedback log (default RUN_DIR/../feedback.jsonl)")
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Review at most this many episodes (0 = all)")] = 0,
    method: Annotated[str | None, typer.Option(help="Only episodes of this method")] = None,
    index: Annotated[
        Path | None, typer.Option(help="Replay each better query on this index (needs --agent-*)")
    ] = None,
    search_url: search_options.SearchUrl = None,  # for replay, instead of --index
    agent_model: Annotated[
        str | None, typer.Option(help="The agent model for those replays ('packaged' = SmolLM2)")
    ] = None,
    agent_llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server of the agent model")
    ] = None,
) -> None:
    """Shadow user mode: feedback on every episode of RUN, appended to the log as simulated."""
    import asyncio

    from sleuth.display import safe_markup
    from sleuth.progress import stderr
    from sleuth.view.simulate import simulate

    if shadow not in ("llm", "rules"):
        raise SleuthError("--shadow must be llm or rules")
    log = feedback or default_feedback_path([run])
    from sleuth.evaluate.session import open_llm
    from sleuth.search.factory import open_engine

    engine = open_engine(index, search_url, default=None).engine
    wants_agent = agent_model is not None or agent_llm_url is not None
    if (engine is None) != (not wants_agent):
        raise SleuthError("replaying better queries needs both an engine and --agent-model/-url")
    agent = (
        open_llm(None if agent_model == "packaged" else agent_model, agent_llm_url)
        if wants_agent
        else None
    )
    llm = None
    if shadow == "llm":
        llm = open_llm(None if model == "packaged" else model, llm_url)
    counts = asyncio.run(
        simulate(run, log, llm, limit=n or None, method=method, agent=agent, engine=engine)
    )
    stderr.print(
        f"{counts['episodes']} episodes reviewed ({counts['unreadable']} unreadable replies), "
        f"{counts['records']} feedback records appended to {safe_markup(log)}, "
        f"{counts['forks']} replayed"
    )


@feedback_app.command("export")
def export_command(
    log: Annotated[Path, typer.Argument(help="Feedback log (JSONL)")],
    kind: Annotated[str, typer.Option("--as", help="sft | retriever | reward")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file")],
    all_forks: Annotated[
        bool, typer.Option(help="sft: keep forks that end wrong too (default: correct ones)")
    ] = False,
) -> None:
    """Offline update: SFT episodes, retriever triples or per-step reward labels."""
    from sleuth.display import safe_markup
    from sleuth.progress import stderr
    from sleuth.view.export import export

    rows = export(log, kind, out, keep_all=all_forks)
    stderr.print(f"wrote {rows} {kind} rows to {safe_markup(out)}")
