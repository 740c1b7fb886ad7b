"""Run every (question, method, seed) episode of an evaluation: concurrent, resumable, and
robust to a failing model or search server.

A run folder holds ``config.json`` (resolved settings, versions, index manifest; written
atomically), ``trajectories.jsonl`` (every episode) and ``results.jsonl`` (one scored record per
episode). Each episode's trajectory is appended before its result, and on start-up any
trajectory without a result is scored from the stored trajectory, so a crash or Ctrl-C at any
moment loses at most the episodes in flight and a re-run never duplicates one.
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.errors import LLMError, SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.judge import judge_answer
from sleuth.evaluate.methods import (
    NEEDS_SEARCH,
    PIPELINES,
    TREE_METHODS,
    agent_config,
    base_method,
    budget_record,
    eval_budget,
    method_settings,
)
from sleuth.evaluate.records import ResultLog, result_key, score_trajectory
from sleuth.evaluate.runlock import LOCK_FILE, run_lock
from sleuth.jsonio import write_json_atomic

if TYPE_CHECKING:
    from sleuth.agent import AgentConfig
    from sleuth.agent.trajectory import Trajectory
    from sleuth.evaluate.clarify import UserFactory
    from sleuth.llm.base import LLM
    from sleuth.search.base import SearchEngine

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.jsonl"
TRAJECTORIES_FILE = "trajectories.jsonl"
# Settings that must match for a resumed run to be one experiment; methods, seeds and the
# question count may grow between invocations. A key missing from an older folder's config reads
# as None, which is what it meant then (no reader: the model answered itself).
# No "strategy" (None) reads as react: the one greedy chain every run made before strategies.
FINGERPRINT_KEYS = (
    "benchmark",
    "model",
    "llm_url",
    "search",
    "budget",
    "judge",
    "reader",
    "searcher",
    "user",
    "user_max_answers",
    "full_intent",
    "strategy",
)


@dataclass
class RunSettings:
    benchmark: str
    methods: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: AgentConfig = field(default_factory=eval_budget)  # the methods' shared settings
    limit: int | None = None
    concurrency: int = 2
    model: str = ""  # what the user asked for, e.g. "packaged" or a served model name
    llm_url: str | None = None
    search: str | None = None  # index folder or search URL; None for closed-book only
    judge: str | None = None  # judge model spec, if any
    # The reader model (``Agent(reader=...)``): its spec, "@URL" when served; None: the model
    # answers itself.
    reader: str | None = None
    # The model the searcher methods (searcher@K, searcher_links@K) search with when it is not
    # the run's model (``--searcher``, the demo's shipped searcher); their reader is then the
    # reader, else the run's model. None: the run's model searches.
    searcher: str | None = None
    # The simulated user answering ``ask`` (``--user``, e.g. "simulated:rules") and its cap;
    # None: nobody answers. ``full_intent``: the questions were asked as their
    # original_question (the ceiling of a clarification run); None: as given.
    user: str | None = None
    user_max_answers: int | None = None
    full_intent: bool | None = None
    # The tree-search strategy of the agent methods (``StrategyConfig.to_dict``); None: react.
    strategy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "budget": budget_record(self.budget)}


@dataclass
class RunOutcome:
    run_dir: Path
    ran: int = 0
    skipped: int = 0
    recovered: int = 0
    failed: int = 0
    unstarted: int = 0  # left for a later resume because the time budget ran out
    seconds: float = 0.0
    first_error: str | None = None  # the first failed episode's error, as its record has it

    @property
    def all_failed(self) -> bool:
        """Every episode this invocation ran failed (none ran: False)."""
        return self.ran > 0 and self.failed == self.ran


def library_versions() -> dict[str, str | None]:
    """Versions that change results, read from package metadata (no heavy imports)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("sleuth", "torch", "transformers", "tantivy", "faiss-cpu", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _fingerprint(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: config.get(k) for k in FINGERPRINT_KEYS}, default=str))


def _with_budget_defaults(flat: dict[str, Any]) -> dict[str, Any]:
    """A budget field added after a run folder was written is missing from its config: the
    run behaved as the field's default (``final_read=0``), so it still resumes with that."""
    if any(key.startswith("budget.") for key in flat):
        for name, default in budget_record(eval_budget()).items():
            flat.setdefault(f"budget.{name}", default)
    return flat


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def settings_differences(
    previous: dict[str, Any],
    current: dict[str, Any],
    labels: tuple[str, str] = ("in the folder", "now"),
) -> list[str]:
    """``["budget.top_k: 3 in the folder, 5 now", ...]`` over the settings that must match."""
    old = _with_budget_defaults(_flatten(_fingerprint(previous), ""))
    new = _with_budget_defaults(_flatten(_fingerprint(current), ""))
    return [
        f"{key}: {json.dumps(old.get(key))} {labels[0]}, {json.dumps(new.get(key))} {labels[1]}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def read_run_config(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's stored configuration, None for a new (or empty) folder, and an error
    for anything that is not a run of ``eval run``: a run writes several files into its
    folder, so it must never be pointed at the filesystem root, an index, or a folder of the
    user's own files (they would be overwritten or mixed with the run's)."""
    resolved = Path(run_dir).expanduser().resolve()
    if resolved.parent == resolved:
        raise SleuthError(f"--out {run_dir}: cannot write a run into the filesystem root")
    if run_dir.exists() and not run_dir.is_dir():
        raise SleuthError(f"--out {run_dir} is a file; give a folder for the run")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        names = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
        if names := [name for name in names if name != LOCK_FILE]:  # a run's own lock is fine
            what = (
                "a Sleuth index"
                if "manifest.json" in names
                else f"files that are not a Sleuth run ({', '.join(names[:5])}"
                + (", ..." if len(names) > 5 else "")
                + ")"
            )
            raise SleuthError(
                f"--out {run_dir} holds {what}; give a new or empty folder, or the folder of "
                "an earlier `sleuth eval run` to resume it"
            )
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SleuthError(f"{path}: corrupt run configuration ({exc})") from None
    if not isinstance(config, dict) or not {"benchmark", "methods"} <= set(config):
        raise SleuthError(
            f"--out {run_dir}: its config.json is not a Sleuth run's (no benchmark and methods); "
            "give a new or empty folder, or the folder of an earlier `sleuth eval run`"
        )
    return config


def check_run(run_dir: Path, settings: RunSettings, has_engine: bool) -> None:
    """Everything about a run that can be wrong before any model is loaded: methods without
    the search engine they need, bad counts, a folder holding a different experiment."""
    needs_search = [m for m in settings.methods if m in NEEDS_SEARCH]
    if needs_search and not has_engine:
        raise SleuthError(
            f"methods {', '.join(needs_search)} need a search engine: pass --index or "
            "--search-url (or run only closed_book)"
        )
    if settings.concurrency < 1:
        raise SleuthError("concurrency must be at least 1")
    if settings.limit is not None and settings.limit < 0:
        raise SleuthError("-n must be 0 (all questions) or more")
    previous = read_run_config(Path(run_dir))
    if previous is not None:
        refuse_different_settings(run_dir, previous, settings.to_dict())


def refuse_different_settings(
    run_dir: Path, previous: dict[str, Any], current: dict[str, Any]
) -> None:
    """One folder holds one experiment: name each setting that differs, old and new value."""
    differences = settings_differences(_served_model_named(previous, current), current)
    if differences:
        raise SleuthError(
            f"{run_dir} holds a run with different settings ({'; '.join(differences)}); "
            "resume it with the same settings or choose a new --out folder"
        )


def _served_model_named(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``previous`` with its model read as ``current``'s when it is a run against the same
    ``--llm-url`` that an older Sleuth recorded as model "packaged" (its name for "whatever
    the server serves", now asked of the server): such a run still resumes, and its
    ``config.json`` then names the served model."""
    url = previous.get("llm_url")
    if url and url == current.get("llm_url") and previous.get("model") == "packaged":
        return {**previous, "model": current.get("model")}
    return previous


def prepare_run_dir(
    run_dir: Path,
    settings: RunSettings,
    question_ids: Sequence[str],
    index_manifest: dict[str, Any] | None,
) -> dict[str, Any]:
    """Create or reopen ``run_dir``; refuse to mix results of different experiments."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG_FILE
    config = settings.to_dict()
    methods = {m: method_settings(m, settings.budget) for m in settings.methods}
    previous = read_run_config(run_dir)
    if previous is not None:
        refuse_different_settings(run_dir, previous, config)
        config["methods"] = list(dict.fromkeys([*previous.get("methods", []), *settings.methods]))
        config["seeds"] = sorted({*previous.get("seeds", []), *settings.seeds})
        old_ids = previous.get("question_ids", [])
        question_ids = list(dict.fromkeys([*old_ids, *question_ids]))
        methods = {**previous.get("method_configs", {}), **methods}
        config["created"] = previous.get("created")
    config.update(
        question_ids=list(question_ids),
        method_configs=json.loads(json.dumps(methods, default=list)),
        versions=library_versions(),
        index_manifest=index_manifest,
        created=config.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    write_json_atomic(path, config)
    return config


def failure_trajectory(
    episode_id: str, question: str, exc: BaseException, metadata: dict[str, Any]
) -> Trajectory:
    """A trajectory for an episode that raised, so the failure is recorded like any result."""
    from sleuth.agent.trajectory import Trajectory

    name = type(exc).__name__
    lowered = f"{name} {exc}".lower()
    if isinstance(exc, LLMError):
        reason = "llm_error"
    elif "search" in lowered or "query" in lowered or "index" in lowered:
        reason = "search_error"
    else:
        reason = "error"
    return Trajectory(
        episode_id=episode_id,
        question=question,
        answer=None,
        stop_reason=reason,
        started_at=time.time(),
        metadata={**metadata, "error": f"{name}: {exc}", "traceback": traceback.format_exc()},
    )


class EvaluationRunner:
    """Runs the pending episodes of a run folder with bounded concurrency."""

    def __init__(
        self,
        run_dir: str | Path,
        settings: RunSettings,
        questions: Sequence[BenchmarkQuestion],
        llm: LLM,
        engine: SearchEngine | None,
        *,
        judge_llm: LLM | None = None,
        index_manifest: dict[str, Any] | None = None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
        deadline: float | None = None,
        reader: LLM | None = None,
        user: UserFactory | None = None,
        searcher: LLM | None = None,
    ) -> None:
        """``deadline`` (a ``time.monotonic()`` value): start no episode after it; the rest
        stays pending for a resume, so a time-boxed run (the demo) ends on time. ``reader``:
        every episode's answer-only calls go to it (``Agent``'s rule; ``settings.reader``
        names it). ``user``: makes each episode's simulated user, who answers the ``ask`` action
        of the methods that have it (``settings.user`` names it). ``searcher``: the searcher
        methods' searching model (``settings.searcher`` names it), run with the worked example
        as it was trained; the reader (else ``llm``) answers for it."""
        check_run(Path(run_dir), settings, engine is not None)
        self.run_dir = Path(run_dir)
        self.settings = settings
        self.questions = list(questions)
        self.llm, self.engine, self.judge_llm = llm, engine, judge_llm
        self.index_manifest = index_manifest
        self.on_result = on_result
        self.deadline = deadline
        self.reader = reader
        self.user = user
        self.searcher = searcher
        from sleuth.agent.trained_settings import trained_settings

        # The prompt the searcher was trained with; the hit length stays the run's (the read
        # budget every method shares).
        trained = trained_settings(settings.searcher) if searcher is not None else {}
        self._searcher_prompt = {k: v for k, v in trained.items() if k == "prompt_example"}
        from sleuth.agent.strategy_config import StrategyConfig

        self.results = ResultLog(self.run_dir / RESULTS_FILE)
        self._strategy = StrategyConfig.from_dict(settings.strategy)
        self._by_id = {q.id: q for q in self.questions}

    def pending(self, done: set[str]) -> list[tuple[BenchmarkQuestion, str, int]]:
        """Question-major order, so a partial run compares all methods on the same questions."""
        return [
            (q, method, seed)
            for q in self.questions
            for method in self.settings.methods
            for seed in self.settings.seeds
            if result_key(q.id, method, seed) not in done
        ]

    async def run(self) -> RunOutcome:
        """Run the pending episodes, holding the folder's lock (``runlock``) throughout."""
        with run_lock(self.run_dir):
            return await self._run()

    async def _run(self) -> RunOutcome:
        from sleuth.agent import TrajectoryLog

        start = time.perf_counter()
        prepare_run_dir(
            self.run_dir, self.settings, [q.id for q in self.questions], self.index_manifest
        )
        self.trajectories = TrajectoryLog(self.run_dir / TRAJECTORIES_FILE)
        outcome = RunOutcome(self.run_dir)
        done = self.results.keys()
        outcome.recovered = await self._recover(done)
        todo = self.pending(done)
        outcome.skipped = len(self.questions) * len(self.settings.methods) * len(
            self.settings.seeds
        ) - len(todo)
        semaphore = asyncio.Semaphore(self.settings.concurrency)

        async def bounded(item: tuple[BenchmarkQuestion, str, int]) -> None:
            async with semaphore:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    outcome.unstarted += 1
                    return
                record = await self._episode(*item)
            outcome.ran += 1
            if record.get("error"):
                outcome.failed += 1
                outcome.first_error = outcome.first_error or str(record["error"])

        await asyncio.gather(*(bounded(item) for item in todo))
        outcome.seconds = time.perf_counter() - start
        return outcome

    async def _recover(self, done: set[str]) -> int:
        """Score trajectories written just before a crash whose result line never made it."""
        recovered = 0
        recorded = self.results.recorded_keys()
        for trajectory in self.trajectories.read():
            meta = trajectory.metadata
            key = trajectory.episode_id
            question = self._by_id.get(str(meta.get("question_id")))
            if key in done or key in recorded or question is None or "method" not in meta:
                continue
            record = score_trajectory(trajectory, question, meta["method"], int(meta["seed"]))
            if record.get("error"):
                continue  # a failed episode whose record was lost: simply retried
            await self._judge(record, question)
            self._write(self.results.append, record)
            done.add(key)
            recovered += 1
        return recovered

    async def _episode(self, question: BenchmarkQuestion, method: str, seed: int) -> dict[str, Any]:
        from sleuth.agent import Agent
        from sleuth.agent.strategies import run_strategy

        key = result_key(question.id, method, seed)
        metadata = {
            "benchmark": self.settings.benchmark,
            "question_id": question.id,
            "method": method,
            "seed": seed,
            "gold_answers": list(question.answers),
            "gold_evidence": [list(item) for item in question.gold_evidence],
        }
        engine = self.engine if method in NEEDS_SEARCH else None
        try:
            if method in PIPELINES:  # a baseline or ceiling: a fixed pipeline, not the loop
                trajectory = await self._pipeline(question, method, seed, key, metadata)
            else:
                config = agent_config(method, self.settings.budget, seed)
                user = self.user(question) if self.user and "ask" in config.actions else None
                strategy = self._strategy if method in TREE_METHODS else None
                llm, reader = self.llm, self.reader
                if self.searcher is not None and base_method(method) == "searcher":
                    llm, reader = self.searcher, self.reader or self.llm
                    config = replace(
                        config, **self._searcher_prompt, read_prompt_example=config.prompt_example
                    )
                agent = Agent(llm, engine, config, ask_user=user, reader=reader)
                trajectory = await run_strategy(
                    agent, question.question, strategy, episode_id=key, metadata=metadata
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad question must not end the run
            trajectory = failure_trajectory(key, question.question, exc, metadata)
        self._write(self.trajectories.append, trajectory)
        record = score_trajectory(trajectory, question, method, seed)
        await self._judge(record, question)
        self._write(self.results.append, record)
        if self.on_result is not None:
            self.on_result(record)
        return record

    async def _pipeline(
        self,
        question: BenchmarkQuestion,
        method: str,
        seed: int,
        key: str,
        metadata: dict[str, Any],
    ) -> Trajectory:
        """A pipeline method's episode (``sleuth.evaluate.pipelines``); its final answer call is
        made by the run's reader model when it has one, else by the run's model."""
        from sleuth.evaluate.pipelines import run_pipeline

        return await run_pipeline(
            method,
            question,
            self.llm,
            self.engine,
            self.settings.budget,
            seed,
            reader=self.reader,
            episode_id=key,
            metadata=metadata,
        )

    def _write(self, append: Callable[[Any], None], item: Any) -> None:
        """A full disk or a lost mount stops the run with one clear message; the append-only
        logs keep every complete line written before it, so re-running resumes cleanly."""
        try:
            append(item)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SleuthError(
                f"cannot write to {self.run_dir}: {reason}. Results written so far are intact; "
                "free space and re-run the same command to resume."
            ) from exc

    async def _judge(self, record: dict[str, Any], question: BenchmarkQuestion) -> None:
        if self.judge_llm is None or record.get("error"):
            return
        try:
            record["judge"] = await judge_answer(
                self.judge_llm, question.question, record["prediction"], question.answers
            )
        except Exception as exc:  # a failing judge leaves the verdict empty, not the run dead
            record["judge_error"] = f"{type(exc).__name__}: {exc}"
