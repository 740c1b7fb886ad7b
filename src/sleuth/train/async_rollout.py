"""Asynchronous rollouts with bounded staleness (``train agent | searcher --async-rollouts``).

A producer thread keeps generating GRPO groups ahead of the trainer with a snapshot of the
policy (``sleuth.train.policy_snapshot``) and puts them, tagged with the snapshot's version,
into a bounded queue; TRL's ``rollout_func`` takes a step's groups from it. The staleness bound
S is kept as ASearcher/AReaL keep ``max_head_offpolicyness``: the batch of groups the trainer
will consume at step k is only started once the weights have taken k - S updates, so a group
is at most S updates old when it is trained on (S = 0: every group is generated with the
current weights after the previous update, i.e. synchronous training on another thread). The
consumer checks the bound again and drops (and counts) a group beyond it, should one get there.

The producer owns its question order (the training set shuffled per epoch with the run's
seed, resumed at the step's offset): the groups it made ahead cannot be the prompts TRL draws
later, so each group carries its dataset row and the rollout returns those columns (answers,
gold evidence, ...) for the reward, in place of the rows TRL drew. Off-policy groups carry the
sampling snapshot's log-probabilities for the loss (``sleuth.train.behaviour_logprobs``).

Per step the log gets ``async/lag_mean``, ``async/lag_max`` (updates between a consumed group's
weights and the trainer's), ``async/dropped`` (groups beyond the bound at this step),
``async/generate_s`` (wall seconds the producer spent on the consumed groups' batches),
``async/groups_generated`` (groups finished so far in this session) and ``rollout/seconds``
(what the trainer waited for its rollouts; the synchronous rollout logs the same key for the
time it spends generating).
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.errors import SleuthError
from sleuth.train.rollout import AgentRolloutFunc, Rollout, as_trl_output

POLL_S = 0.5  # how often a blocked thread looks for a stop request


def check_async_settings(
    async_rollouts: bool, max_staleness: int, rollouts: str = "chain", noise_schedule: Any = None
) -> None:
    """Refuse settings that asynchronous rollouts cannot honour, before anything loads."""
    if max_staleness < 0:
        raise SleuthError(f"--max-staleness must be 0 or more updates, not {max_staleness}")
    if not async_rollouts:
        return
    if rollouts != "chain":
        raise SleuthError(
            "--async-rollouts generates chain groups ahead; --rollouts tree is synchronous only"
        )
    if noise_schedule:
        raise SleuthError(
            "--noise-schedule sets the simulator's noise per step, but an asynchronous group is "
            "generated steps ahead: use one or the other"
        )


@dataclass
class Group:
    """One question's G episodes, generated together by weights of ``version`` updates."""

    row: dict[str, Any]
    rollouts: list[Rollout]
    version: int
    batch: int  # the producer's batch it came from (its groups share ``seconds``)
    seconds: float  # wall time of that batch: episodes and log-probabilities
    logprobs: list[list[float]] | None = None


class QuestionStream:
    """The producer's own question order: the rows shuffled per epoch with ``seed``."""

    def __init__(self, rows: Sequence[dict[str, Any]], seed: int, start: int = 0) -> None:
        if not rows:
            raise SleuthError("no training questions for the rollouts")
        self.rows, self.seed, self.position = list(rows), seed, start

    def take(self, count: int) -> list[dict[str, Any]]:
        taken = []
        for _ in range(count):
            epoch, index = divmod(self.position, len(self.rows))
            order = list(range(len(self.rows)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            taken.append(self.rows[order[index]])
            self.position += 1
        return taken


@dataclass
class ProducerStats:
    groups: int = 0
    episodes: int = 0
    seconds: float = 0.0
    batch_seconds: dict[int, float] = field(default_factory=dict)


class RolloutProducer(threading.Thread):
    """Generates step-sized batches of groups ahead, within the staleness bound."""

    def __init__(
        self,
        rollout: AsyncRolloutFunc,
        snapshot: Any,
        clock: Any,
        generate: Any,
        start_version: int,
    ) -> None:
        super().__init__(name="async-rollouts", daemon=True)
        self.rollout, self.snapshot, self.clock = rollout, snapshot, clock
        self._generate, self.start_version = generate, start_version
        per_step = rollout.questions_per_step
        bound = (rollout.max_staleness + 1) * per_step  # the most groups the bound lets wait
        self.groups: queue.Queue[Group] = queue.Queue(maxsize=bound)
        self.stream = QuestionStream(rollout.rows, rollout.seed, start_version * per_step)
        self.stats = ProducerStats()
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def generate(self, ids: list[int], config: Any) -> list[int]:
        if self._halt.is_set():  # ends the episodes in flight (recorded as an llm_error)
            raise RuntimeError("asynchronous rollouts stopped")
        return self._generate(ids, config)

    def stop(self) -> None:
        self._halt.set()
        self.clock.wake()

    def run(self) -> None:
        try:
            batch = 0
            while not self._halt.is_set():
                # Batch n is consumed at step start + n: start it at version >= start + n - S.
                needed = self.start_version + batch - self.rollout.max_staleness
                while not self.clock.wait_for(needed, POLL_S):
                    if self._halt.is_set():
                        return
                self._produce(batch)
                batch += 1
        except BaseException as exc:  # the trainer re-raises it instead of waiting forever
            self.error = exc

    def _produce(self, batch: int) -> None:
        rollout = self.rollout
        version = self.snapshot.refresh()
        rows = self.stream.take(rollout.questions_per_step)
        questions = [row["prompt"] for row in rows for _ in range(rollout.num_generations)]
        started = time.perf_counter()
        episodes = asyncio.run(rollout.episodes(questions, self.generate))
        if self._halt.is_set():
            return
        logprobs = rollout.behaviour_logprobs(self.snapshot.model, episodes, self._halt.is_set)
        if self._halt.is_set():
            return
        seconds = time.perf_counter() - started
        self.stats.seconds += seconds
        self.stats.batch_seconds[batch] = seconds
        size = rollout.num_generations
        for i, row in enumerate(rows):
            group = Group(
                row=row,
                rollouts=episodes[i * size : (i + 1) * size],
                version=version,
                batch=batch,
                seconds=seconds,
                logprobs=logprobs[i * size : (i + 1) * size] if logprobs is not None else None,
            )
            while not self._halt.is_set():
                try:
                    self.groups.put(group, timeout=POLL_S)
                    break
                except queue.Full:
                    continue
            self.stats.groups += 1
            self.stats.episodes += size

    def take(self) -> Group:
        """The next finished group (blocks); the producer's error if it failed."""
        while True:
            if self.error is not None:
                raise SleuthError(f"asynchronous rollouts failed: {self.error}") from self.error
            try:
                return self.groups.get(timeout=POLL_S)
            except queue.Empty:
                if not self.is_alive() and self.error is None:
                    raise SleuthError("asynchronous rollouts stopped before the step") from None


class AsyncRolloutFunc(AgentRolloutFunc):
    """TRL's ``rollout_func`` fed by a ``RolloutProducer`` (started at the first call)."""

    def __init__(
        self,
        *args: Any,
        rows: Sequence[dict[str, Any]],
        num_generations: int,
        questions_per_step: int,
        max_staleness: int,
        temperature: float,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_async_settings(True, max_staleness)
        self.rows = list(rows)
        self.num_generations, self.questions_per_step = num_generations, questions_per_step
        self.max_staleness, self.temperature, self.seed = max_staleness, temperature, seed
        self.producer: RolloutProducer | None = None
        self.consumed: list[Group] = []  # every group trained on, in order (tests, summaries)
        self.dropped = 0

    def behaviour_logprobs(
        self, model: Any, episodes: list[Rollout], halted: Any = None
    ) -> list[list[float]] | None:
        """The sampling snapshot's log-probabilities of each episode's completion tokens (one
        placeholder for an empty one, as ``as_trl_output``); None at S = 0, where every group
        is on-policy and TRL's own ratio of 1 is exact. Stops early once ``halted()``."""
        if self.max_staleness == 0:
            return None
        from sleuth.train.behaviour_logprobs import sequence_logprobs

        out = []
        for episode in episodes:
            if halted is not None and halted():
                return None
            ids = episode.stream.completion_ids
            if not ids:
                out.append([0.0])
                continue
            out.append(sequence_logprobs(model, episode.stream.prompt_ids, ids, self.temperature))
        return out

    def start(self, trainer: Any) -> RolloutProducer:
        from sleuth.train.policy_snapshot import PolicySnapshot, VersionClock

        start = int(trainer.state.global_step)  # a resumed run continues its count
        clock = VersionClock(start)
        source = trainer.accelerator.unwrap_model(trainer.model)
        snapshot = PolicySnapshot(source, clock)
        generate = self._generate
        if generate is None:
            from sleuth.train.batched_generate import BatchedGenerator

            generate = BatchedGenerator(
                snapshot.model, self.tokenizer, max_batch=max(1, self.concurrency)
            )
        producer = RolloutProducer(self, snapshot, clock, generate, start)
        trainer.add_callback(clock)
        trainer.add_callback(_stopper(producer))
        producer.start()
        return producer

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        if self.producer is None:
            self.producer = self.start(trainer)
        producer = self.producer
        if len(prompts) % self.num_generations:
            size = self.num_generations
            raise SleuthError(f"{len(prompts)} prompts are not whole groups of {size}")
        needed = len(prompts) // self.num_generations
        version = int(trainer.state.global_step)
        started = time.perf_counter()
        groups: list[Group] = []
        dropped = 0
        while len(groups) < needed:
            group = producer.take()
            if version - group.version > self.max_staleness:
                dropped += 1
                continue
            groups.append(group)
        waited = time.perf_counter() - started
        self.dropped += dropped
        self.consumed += groups
        lags = [version - g.version for g in groups]
        batches = {g.batch: g.seconds for g in groups}
        _log(
            trainer,
            {
                "rollout/seconds": waited,
                "async/lag_mean": sum(lags) / len(lags),
                "async/lag_max": max(lags),
                "async/dropped": dropped,
                "async/generate_s": sum(batches.values()),
                "async/groups_generated": producer.stats.groups,
            },
        )
        self.last = [r for g in groups for r in g.rollouts]
        output = as_trl_output(self.last, self.tokenizer.eos_token_id)
        if self.max_staleness > 0:
            output["logprobs"] = [lp for g in groups for lp in g.logprobs or []]
        for key in self.rows[0]:
            if key != "prompt":  # the group's own gold, for the reward
                output[key] = [g.row[key] for g in groups for _ in g.rollouts]
        return output


def _log(trainer: Any, values: dict[str, float]) -> None:
    metrics = getattr(trainer, "_metrics", None)
    if metrics is None:
        return
    for key, value in values.items():
        metrics["train"][key].append(float(value))


def _stopper(producer: RolloutProducer) -> Any:
    """A callback that stops the producer when training ends (its thread joins)."""
    from transformers import TrainerCallback

    class StopRollouts(TrainerCallback):
        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            producer.stop()
            producer.join(timeout=120)

    return StopRollouts()


def async_summary(history: Sequence[dict[str, Any]], rollout: Any) -> dict[str, Any]:
    """``results.json``'s record of the asynchronous rollouts: the bound, per-step lags and
    waits, and the groups generated, consumed and dropped (the last session's producer)."""
    steps = [r for r in history if "async/lag_max" in r]
    producer = getattr(rollout, "producer", None)
    return {
        "max_staleness": getattr(rollout, "max_staleness", None),
        "lag_mean_per_step": [r["async/lag_mean"] for r in steps],
        "lag_max_per_step": [r["async/lag_max"] for r in steps],
        "dropped_per_step": [r["async/dropped"] for r in steps],
        "wait_s_per_step": [round(r["rollout/seconds"], 2) for r in steps],
        "generate_s_per_step": [round(r["async/generate_s"], 2) for r in steps],
        "groups_generated": producer.stats.groups if producer else 0,
        "groups_consumed": len(getattr(rollout, "consumed", [])),
        "groups_dropped": getattr(rollout, "dropped", 0),
        "producer_seconds": round(producer.stats.seconds, 1) if producer else 0.0,
    }


def chain_rollout(
    config: Any,
    search: Any,
    tokenizer: Any,
    dataset: Any,
    *,
    generate: Any = None,
    reader: Any = None,
    users: Any = None,
) -> AgentRolloutFunc:
    """The chain ``rollout_func`` of a trainer's ``config``: synchronous, or asynchronous with
    ``config.async_rollouts`` (its ``max_staleness``, ``num_generations``,
    ``questions_per_step``, ``seed`` and the episode's temperature)."""
    episode = config.agent_config()
    args = (search, tokenizer, episode, config.concurrency)
    if not getattr(config, "async_rollouts", False):
        return AgentRolloutFunc(*args, generate=generate, reader=reader, users=users)
    return AsyncRolloutFunc(
        *args,
        generate=generate,
        reader=reader,
        users=users,
        rows=list(dataset),
        num_generations=config.num_generations,
        questions_per_step=config.questions_per_step,
        max_staleness=config.max_staleness,
        temperature=episode.temperature,
        seed=config.seed,
    )
