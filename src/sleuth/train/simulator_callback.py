"""``train agent --simulate SPEC --noise-schedule START:END[:shape]``: the simulated engine for
rollouts and the curriculum that raises its noise step by step, logged per step in
``train_log.jsonl`` (key ``sim_noise``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.search.simulated.schedule import NoiseSchedule, parse_schedule


def check_noise_schedule(config: Any) -> None:
    """A schedule without ``--simulate``, or one that does not parse, fails before the model
    loads."""
    spec = getattr(config, "simulate", None)
    schedule = getattr(config, "noise_schedule", None)
    if schedule and not spec:
        raise SleuthError("--noise-schedule needs --simulate (the schedule sets its noise)")
    if schedule:
        parse_schedule(schedule)


def simulate_for_training(engine: Any, config: Any) -> Any:
    """The engine rollouts search: ``engine`` itself unless ``config.simulate`` is set, else the
    simulation over it (through the engine factory, like every command's ``--simulate``)."""
    from sleuth.search.factory import OpenedEngine, with_wrappers

    check_noise_schedule(config)
    opened = OpenedEngine(engine, None, None)
    simulate = getattr(config, "simulate", None)
    return with_wrappers(opened, simulate=simulate, questions=training_questions(config)).engine


def training_questions(config: Any) -> list[Any]:
    """The benchmark's questions when rollouts search a simulation (their gold evidence stays
    out of its hard negatives); none are needed otherwise."""
    if not getattr(config, "simulate", None):
        return []
    from sleuth.evaluate.benchmarks import load_benchmark

    return load_benchmark(config.benchmark).questions


def attach_noise_schedule(trainer: Any, engine: Any, config: Any) -> None:
    """Set the engine's noise before every step from the schedule and log it for that step."""
    if not getattr(config, "noise_schedule", None):
        if getattr(config, "simulate", None):
            trainer.add_callback(NoiseCallback(engine, None, Path(config.out)))
        return
    schedule = parse_schedule(config.noise_schedule)
    trainer.add_callback(NoiseCallback(engine, schedule, Path(config.out)))


def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class NoiseCallback(_callback_base()):  # type: ignore[misc]
    """Before each optimizer step: p = schedule(step); one log line {"step", "sim_noise"}."""

    def __init__(self, engine: Any, schedule: NoiseSchedule | None, out: Path) -> None:
        self.engine, self.schedule, self.log = engine, schedule, out / "train_log.jsonl"

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[override]
        from sleuth.train.runlog import append_jsonl

        if self.schedule is not None:
            self.engine.noise = self.schedule.value(state.global_step, state.max_steps)
        if state.is_world_process_zero:  # logged under the step it is about to complete
            append_jsonl(self.log, {"step": state.global_step + 1, "sim_noise": self.engine.noise})
