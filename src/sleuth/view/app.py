"""The viewer's web app: server-rendered pages (Jinja2, autoescaped), one small local script,
no external assets. Every string from a run (questions, model text, documents) is untrusted:
the templates escape it, and a Content-Security-Policy forbids inline and foreign scripts.

Pages: ``/`` runs and methods with metrics; ``/episodes`` filterable list; ``/episode`` one
episode step by step with the debug tools and its forks; ``/compare`` one question across
methods and runs. Forms post to ``/feedback`` (thumbs) and ``/replay`` (edits).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Litestar, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from sleuth.errors import SleuthError
from sleuth.http_guard import HostAllowList, RequestGuard
from sleuth.view.filters import OUTCOMES, EpisodeFilter, is_correct, outcome, outcome_counts, select
from sleuth.view.replay import Edit
from sleuth.view.state import ViewerState

HERE = Path(__file__).parent
MAX_LIST = 500  # episodes listed on one page
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),  # no-referrer makes a form's Origin "null"
)
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
    )
    env.filters["num"] = _number
    env.globals.update(outcome=outcome, is_correct=is_correct, urlencode=urlencode)
    return env


def _int(form: dict[str, str], key: str) -> int:
    try:
        return int(form.get(key, ""))
    except ValueError:
        raise SleuthError(f"{key} must be a whole number") from None


def _episode_url(run: str, episode_id: str, anchor: str = "") -> str:
    return (
        "/episode?" + urlencode({"run": run, "id": episode_id}) + (f"#{anchor}" if anchor else "")
    )


def create_app(state: ViewerState, *, allowed_hosts: HostAllowList | None = None) -> Litestar:
    """The app over ``state`` (runs, feedback log, and the engine/model used for replay).
    Every response (pages, error pages, 404s, static files, refusals) carries the
    ``SECURITY_HEADERS``; a ``Host`` not in ``allowed_hosts`` (default: the loopback names) is a
    421, a foreign ``Origin`` a 403 (``sleuth.http_guard``)."""

    def check_token(form: dict[str, str]) -> None:
        if not hmac.compare_digest(form.get("token", "").encode(), state.token.encode()):
            raise HTTPException(status_code=403, detail="missing or stale form token; reload")

    def page(name: str, **context: Any) -> Template:
        return Template(
            template_name=name, context={"token": state.token, "runs": state.runs, **context}
        )

    @get("/", sync_to_thread=False)
    def index() -> Template:
        """Runs and methods with their metrics and outcome counts."""
        counts = {
            (run.label, method): outcome_counts(
                e for e in run.episodes.values() if e.method == method
            )
            for run in state.runs.values()
            for method in run.methods
        }
        return page("index.html", counts=counts, can_replay=state.can_replay)

    @get("/episodes", sync_to_thread=False)
    def episodes(request: Request) -> Template:
        """Episodes filtered by run, method, outcome, search count, correctness, question."""
        wanted = EpisodeFilter.from_query(request.query_params)
        chosen = select(state.episodes(), wanted)
        methods = sorted({m for run in state.runs.values() for m in run.methods})
        return page(
            "episodes.html",
            wanted=wanted,
            episodes=chosen[:MAX_LIST],
            total=len(chosen),
            methods=methods,
            outcomes=OUTCOMES,
            counts=outcome_counts(chosen),
        )

    @get("/episode", sync_to_thread=False)
    def episode(run: FromQuery[str], id: FromQuery[str]) -> Template:
        """One episode step by step, the debug tools, its forks and its feedback."""
        shown = state.episode(run, id)
        return page(
            "episode.html",
            episode=shown,
            forks=state.forks.get(shown.id, []),
            parent=state.episode(
                str(shown.trajectory.metadata.get("parent_run", "")),
                str(shown.trajectory.metadata["parent_episode_id"]),
            )
            if shown.trajectory and "parent_episode_id" in shown.trajectory.metadata
            else None,
            feedback=state.feedback_for(shown.id),
            can_replay=state.can_replay,
        )

    @get("/compare", sync_to_thread=False)
    def compare(question_id: FromQuery[str]) -> Template:
        """The same question side by side across methods and runs."""
        columns = [e for e in state.episodes() if e.question_id == question_id]
        if not columns:
            raise SleuthError(f"no episode answers question {question_id!r}")
        columns.sort(key=lambda e: (e.run, e.method, e.record.get("seed", 0)))
        return page("compare.html", columns=columns, question=columns[0].record["question"])

    @post("/feedback", sync_to_thread=True)
    def feedback(data: Form) -> Redirect:
        """A thumb up or down on a step or one of its hits, with an optional comment."""
        check_token(data)
        value = {"up": 1, "down": -1}.get(data.get("value", ""))
        if value is None:
            raise SleuthError("value must be up or down")
        run, episode_id = data.get("run", ""), data.get("episode", "")
        step = _int(data, "step")
        state.thumb(run, episode_id, step, value, data.get("hit", ""), data.get("comment", ""))
        return Redirect(_episode_url(run, episode_id, f"step-{step}"), status_code=303)

    @post("/replay")
    async def replay_step(data: Form) -> Redirect:
        """Apply an edit at a step, replay the episode from there, and show the fork."""
        check_token(data)
        edit = Edit(data.get("kind", ""), _int(data, "step"), data.get("text", ""))
        run, episode_id = data.get("run", ""), data.get("episode", "")
        fork = await state.fork(run, episode_id, edit)
        return Redirect(_episode_url(run, episode_id, f"fork-{fork.id}"), status_code=303)

    def sleuth_error(request: Request, exc: SleuthError) -> Response[str]:
        template = request.app.template_engine.get_template("error.html")  # type: ignore[union-attr]
        html = template.render(message=str(exc), runs=state.runs, token=state.token)
        return Response(html, status_code=400, media_type="text/html")

    app = Litestar(
        route_handlers=[
            index,
            episodes,
            episode,
            compare,
            feedback,
            replay_step,
            create_static_files_router(path="/static", directories=[HERE / "static"]),
        ],
        template_config=TemplateConfig(
            instance=JinjaTemplateEngine.from_environment(_environment())
        ),
        exception_handlers={SleuthError: sleuth_error},
        debug=False,
        logging_config=None,  # leave the process's logging alone (Litestar's default adds an
        # INFO handler to the root logger: library log lines then reach a command's stdout)
    )
    app.asgi_handler = RequestGuard(app.asgi_handler, allowed_hosts, headers=SECURITY_HEADERS)
    return app
