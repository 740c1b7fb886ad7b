"""One GRPO run, written once: every trainer (``train expand | agent | selfplay``) prepares its
run folder, records its settings, trains (resuming from the last complete checkpoint) and
writes its results the same way; a trainer supplies only what is its own.

A new trainer subclasses ``GRPORun`` (``sleuth.train.agent_grpo.AgentRun`` is the smallest to
copy) and fills in:

- ``check()``: what must hold before ``config.json`` records the settings (optional);
- ``prepare()``: what the run needs besides the engine before the model loads, such as the
  questions (optional);
- ``build_trainer(model, tokenizer, name)``: the TRL trainer, with its rollouts and callbacks
  (the engine is ``self.engine``; a ``--simulate`` run's noise curriculum is attached here);
- ``summarise(trainer, history, seconds, name)``: ``results.json`` (``results()`` makes the
  usual one);
- ``curve(history)``: ``curve.png``.

Its entry point opens the engine itself, between the two halves of the skeleton::

    run = MyRun(config, log)
    run.start()  # run folder, check(), config.json, leftovers of a killed save removed
    engine = open_engine(config.index).engine  # sleuth.search.factory
    return run.finish(engine)  # prepare(), model, trainer, train, results.json, curve.png

The run folder then holds ``config.json`` (the config's ``to_dict()``), ``train_log.jsonl``,
the atomic ``checkpoint-N`` folders, ``results.json`` and ``curve.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class RunConfig(Protocol):
    """What the skeleton reads of a trainer's config."""

    @property
    def out(self) -> str: ...

    @property
    def model(self) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...


class GRPORun:
    """The skeleton (``run``) and the hooks a trainer overrides."""

    def __init__(self, config: RunConfig, log: Callable[[str], None] = print) -> None:
        self.config, self.log = config, log
        self.out = Path(config.out)
        self.engine: Any = None  # given to finish()

    def check(self) -> None:
        """Before ``config.json`` is written: settings that fail here leave no record."""

    def prepare(self) -> None:
        """After ``config.json`` and the engine, before the model loads: load questions."""

    def build_trainer(self, model: Any, tokenizer: Any, name: str) -> Any:
        raise NotImplementedError

    def summarise(
        self, trainer: Any, history: list[dict[str, Any]], seconds: float, name: str
    ) -> dict[str, Any]:
        raise NotImplementedError

    def curve(self, history: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError

    def results(
        self, name: str, summary: dict[str, Any], seconds: float, **extra: Any
    ) -> dict[str, Any]:
        """The usual ``results.json``: the model, the summary, the time, ``extra``, the config."""
        return {
            "model": name,
            **summary,
            "seconds": round(seconds, 1),
            **extra,
            "config": self.config.to_dict(),
        }

    def start(self) -> GRPORun:
        """The run folder (created, or kept to resume) with this run's ``config.json``."""
        from sleuth.jsonio import write_json_atomic
        from sleuth.train.checkpoints import clear_staging

        self.out.mkdir(parents=True, exist_ok=True)
        self.check()
        write_json_atomic(self.out / "config.json", self.config.to_dict())
        clear_staging(self.out)
        return self

    def finish(self, engine: Any) -> dict[str, Any]:
        """Train over ``engine`` (resuming), then write ``results.json`` and ``curve.png``."""
        from sleuth.jsonio import write_json_atomic
        from sleuth.train.checkpoints import train_resuming
        from sleuth.train.policy_model import load_trainable
        from sleuth.train.runlog import read_log
        from sleuth.train.simulator_callback import attach_noise_schedule

        self.engine = engine
        self.prepare()
        model, tokenizer, name = load_trainable(self.config.model)
        trainer = self.build_trainer(model, tokenizer, name)
        attach_noise_schedule(trainer, self.engine, self.config)  # --simulate runs only
        seconds = train_resuming(trainer, self.out, self.log)
        history = read_log(self.out / "train_log.jsonl")
        results = self.summarise(trainer, history, seconds, name)
        write_json_atomic(self.out / "results.json", results)
        (self.out / "curve.png").write_bytes(self.curve(history))
        return results
