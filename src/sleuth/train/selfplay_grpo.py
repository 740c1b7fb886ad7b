"""``sleuth train selfplay``: Search Self-play (SSP) GRPO, one policy in two roles per step.

Each step's batch has ``2 * P`` GRPO groups of ``G`` rows, laid out as TRL expects (a group's
rows are consecutive):

- **P proposer groups**: the batch's first ``P`` prompts are seed topics; each is proposed ``G``
  times (sampled at the training temperature), so the ``G`` proposals of one seed compete with
  each other: GRPO's group is "same task, different attempts", exactly as for a solver. A
  proposal is the proposer's agent episode (search/open from the seed, then ``<answer>`` with a
  short fact) and, as the *same episode's* last turn, the question for that answer, so every
  token the proposer reward credits is in the row's token stream (loss mask 1) and every token
  the environment added is masked (0). Verification is ``sleuth.synth.questions``' SSP check by
  the same policy (greedy, not trained on).
- **P solver slots**: every verified question is solved by a group of ``G`` solver episodes (its
  proposer needs the group's success rate); ``P`` of those groups enter the batch, groups whose
  rewards differ first (a group with one reward for all teaches nothing). A slot with no
  verified question is a placeholder row: no model token, reward 0, nothing learnt from it.

Rewards (``sleuth.train.selfplay``): solver = correctness on the verified question; proposer =
``1 - the solver group's success rate`` (0 for an unverifiable or malformed proposal). The
rollouts, token streams, loss masks, batched generation, trainer, atomic checkpoints and log
are ``train agent``'s own (``rollout``, ``batched_generate``, ``grpo``, ``checkpoints``,
``runlog``).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.agent.config import AgentConfig
from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.llm.base import GenerationConfig, Message
from sleuth.synth.questions import (
    Proposal,
    QuestionSynthesizer,
    SynthSettings,
    proposer_episode,
    proposer_task,
)
from sleuth.train.curves import png
from sleuth.train.episode import check_training_episode, from_record, to_record, training_episode
from sleuth.train.grpo import skipped_share
from sleuth.train.rollout import Generate, PolicyLLM, Rollout, TokenStream, run_episodes
from sleuth.train.run import GRPORun
from sleuth.train.selfplay import proposer_reward, solver_reward
from sleuth.types import Document

METRIC = "selfplay/"  # prefix of the per-step metrics in train_log.jsonl


# The solver-episode settings `train selfplay` exposes, recorded flat in config.json.
EPISODE_KEYS = (
    "temperature",
    "max_new_tokens",
    "top_k",
    "doc_chars",
    "max_turns",
    "max_searches",
    "min_searches",
)


def solver_episode(**changes: Any) -> AgentConfig:
    """``train agent``'s episode with smaller reading (2 hits of 200 characters): both roles
    read what the solver reads."""
    return training_episode(**{"top_k": 2, "doc_chars": 200, **changes})


@dataclass(frozen=True)
class SelfPlayTrainConfig:
    out: str
    index: str | None = None  # None = the bundled HotpotQA BM25 index
    model: str | None = None  # None = the packaged SmolLM2-135M-Instruct
    steps: int = 20
    proposals_per_step: int = 1  # P: seed topics per step, each proposed G times
    num_generations: int = 2  # G: proposals per seed and solver episodes per question
    hops: int = 2  # searches the proposer is asked for
    learning_rate: float = 1e-6
    beta: float = 0.0
    question_tokens: int = 40  # the proposer's question turn
    concurrency: int = 8  # episodes decoded together
    save_steps: int = 1
    seed: int = 0
    simulate: str | None = None
    noise_schedule: str | None = None
    micro_batch: int | None = 1  # episodes per forward/backward pass (see AgentTrainConfig)
    answer_spans: bool = True  # the proposer chooses its answer among spans it read
    # The solver's episode; the proposer reads (top_k, doc_chars), speaks (max_new_tokens per
    # turn) and samples (temperature) as it does.
    episode: AgentConfig = field(default_factory=solver_episode)

    def __post_init__(self) -> None:
        check_training_episode(self.episode)
        if self.steps < 1:
            raise SleuthError(f"--steps must be at least 1; got {self.steps}")
        if self.proposals_per_step < 1:
            raise SleuthError(
                f"--proposals-per-step must be at least 1; got {self.proposals_per_step}"
            )
        if self.num_generations < 2:
            raise SleuthError(
                f"--num-generations must be at least 2 (a GRPO group); got {self.num_generations}"
            )
        if self.hops < 1:
            raise SleuthError(f"--hops must be at least 1; got {self.hops}")
        if self.noise_schedule and not self.simulate:
            raise SleuthError("--noise-schedule needs --simulate (the schedule sets its noise)")

    def solver_config(self) -> AgentConfig:
        """The solver is ``train agent``'s episode."""
        return self.episode

    def synth_settings(self) -> SynthSettings:
        e = self.episode
        proposer = proposer_episode(
            top_k=e.top_k,
            max_new_tokens=e.max_new_tokens,
            doc_chars=e.doc_chars,
            temperature=e.temperature,
            answer_spans=self.answer_spans,
        )
        return SynthSettings(hops=self.hops, seed=self.seed, agent=proposer)

    def to_dict(self) -> dict[str, Any]:
        return to_record(self, EPISODE_KEYS)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SelfPlayTrainConfig:
        """From ``to_dict``'s flat shape (``config.json``, the command's options)."""
        return from_record(cls, record, EPISODE_KEYS, solver_episode())


def question_turn(answer: str) -> str:
    """The user turn that asks the proposer, inside its own episode, for the question."""
    return (
        f'Now write the quiz question whose answer is "{answer}", using facts from the '
        "documents you read. Do not put the answer in the question. Reply with the question only."
    )


class RecordingPolicy(PolicyLLM):
    """A ``PolicyLLM`` that keeps the last conversation it was given, so the episode can go on
    after the agent loop has finished (the proposer's question turn)."""

    def __init__(self, generate: Generate, tokenizer: Any, name: str = "policy") -> None:
        super().__init__(generate, tokenizer, name)
        self.messages: list[Message] = []

    def _step(self, messages: list[Message], config: GenerationConfig) -> Any:
        self.messages = list(messages)
        return super()._step(messages, config)


class EpisodeProposer(QuestionSynthesizer):
    """One proposal as one token stream: the agent episode, then its question turn; the SSP
    verification episodes run on fresh, untrained streams of the same policy."""

    def __init__(
        self,
        generate: Generate,
        tokenizer: Any,
        engine: Any,
        settings: SynthSettings,
        question_tokens: int,
    ) -> None:
        self.policy = RecordingPolicy(generate, tokenizer)
        super().__init__(self.policy, engine, settings)
        self.generate, self.tokenizer, self.question_tokens = generate, tokenizer, question_tokens

    def solver_llm(self) -> PolicyLLM:
        return PolicyLLM(self.generate, self.tokenizer, name="verifier")

    async def write_question(
        self, answer: str, documents: Sequence[Document], trajectory: Trajectory
    ) -> str:
        if not self.policy.messages or not trajectory.steps:
            return ""
        spoken = trajectory.steps[-1].model_output  # as the loop remembered it: tag closed
        if "</answer>" not in spoken.lower():
            spoken += "</answer>"
        messages = [
            *self.policy.messages,
            {"role": "assistant", "content": spoken},
            {"role": "user", "content": question_turn(answer)},
        ]
        config = GenerationConfig(
            max_tokens=self.question_tokens, temperature=self.settings.agent.temperature
        )
        return (await self.policy.complete(messages, config)).text


@dataclass
class StepRecord:
    """What one step did: every proposal, the solver groups, the rows trained on."""

    proposals: list[Proposal]
    proposer_rewards: list[float]
    solver_groups: dict[int, list[float]]  # proposal index -> solver rewards
    trained_solver_groups: list[int]


class SelfPlayRolloutFunc:
    """TRL's ``rollout_func`` for self-play: ``2 * P`` groups of ``G`` prompts in, rows out."""

    def __init__(
        self,
        engine: Any,
        tokenizer: Any,
        config: SelfPlayTrainConfig,
        seeds: dict[str, Document],
        generate: Generate | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.engine, self.tokenizer, self.config, self.seeds = engine, tokenizer, config, seeds
        self._generate, self.log = generate, log
        self.last: list[Rollout] = []
        self.last_record: StepRecord | None = None
        self.out = Path(config.out)

    def _seed_of(self, prompt: Any) -> Document:
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        try:
            return self.seeds[text]
        except KeyError:
            raise SleuthError("a self-play prompt that is not a known seed topic") from None

    async def _propose(self, seed: Document, name: str) -> tuple[Proposal, Rollout]:
        assert self._generate is not None
        proposer = EpisodeProposer(
            self._generate,
            self.tokenizer,
            self.engine,
            self.config.synth_settings(),
            self.config.question_tokens,
        )
        proposal = await proposer.propose(seed, 0)
        trajectory = proposer.trajectories[-1]
        trajectory.episode_id, proposal.proposer_trajectory = name, name
        trajectory.metadata.update(role="proposer", question=proposal.question)
        return proposal, Rollout(trajectory, proposer.policy.stream)

    async def _solve(self, proposal: Proposal) -> list[Rollout]:
        from sleuth.search.simulated import episode_gold

        assert self._generate is not None
        with episode_gold(proposal.question, [proposal.answer], proposal.evidence_ids):
            return await run_episodes(
                [proposal.question] * self.config.num_generations,
                self._generate,
                self.tokenizer,
                self.engine,
                self.config.solver_config(),
                self.config.concurrency,
            )

    async def _step(self, seeds: list[Document], step: int) -> tuple[list, dict[int, list]]:
        gate = asyncio.Semaphore(max(1, self.config.concurrency))
        G = self.config.num_generations

        async def propose(i: int) -> tuple[Proposal, Rollout]:
            async with gate:
                return await self._propose(seeds[i // G], f"proposer-{step}-{i}")

        proposed = await asyncio.gather(*(propose(i) for i in range(len(seeds) * G)))
        verified = [i for i, (p, _) in enumerate(proposed) if p.accepted]
        solved = await asyncio.gather(*(self._solve(proposed[i][0]) for i in verified))
        return list(proposed), dict(zip(verified, solved, strict=True))

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        started = time.perf_counter()
        G, P = self.config.num_generations, self.config.proposals_per_step
        if len(prompts) != 2 * P * G:
            raise SleuthError(f"self-play expects {2 * P * G} prompts a step; got {len(prompts)}")
        if self._generate is None:
            from sleuth.train.batched_generate import BatchedGenerator

            self._generate = BatchedGenerator(
                trainer.accelerator.unwrap_model(trainer.model),
                self.tokenizer,
                max_batch=max(1, self.config.concurrency),
            )
        step = int(trainer.state.global_step) + 1
        seeds = [self._seed_of(prompts[g * G]) for g in range(P)]
        proposed, solved = asyncio.run(self._step(seeds, step))
        proposals = [p for p, _ in proposed]
        solver_rewards = {
            i: [solver_reward(r.trajectory.answer, proposals[i]) for r in rollouts]
            for i, rollouts in solved.items()
        }
        p_rewards = [proposer_reward(p, solver_rewards.get(i, [])) for i, p in enumerate(proposals)]
        trained = pick_solver_groups(solver_rewards, P)

        rows = [r for _, r in proposed]
        rewards, roles = list(p_rewards), ["proposer"] * len(rows)
        for slot in range(P):
            if slot < len(trained):
                rows += solved[trained[slot]]
                rewards += solver_rewards[trained[slot]]
                roles += ["solver"] * G
            else:
                prompt_ids = self.tokenizer(str(prompts[(P + slot) * G]))["input_ids"]
                empty = Rollout(Trajectory("empty-slot", ""), TokenStream(list(prompt_ids)))
                rows += [empty] * G
                rewards += [0.0] * G
                roles += ["empty"] * G
        self.last = rows
        record = StepRecord(proposals, p_rewards, solver_rewards, trained)
        self.last_record = record
        self._write(step, record, time.perf_counter() - started, trainer)
        from sleuth.train.rollout import as_trl_output

        output = as_trl_output(rows, self.tokenizer.eos_token_id)
        output["selfplay_reward"] = rewards
        output["selfplay_role"] = roles
        return output

    def _write(self, step: int, record: StepRecord, seconds: float, trainer: Any) -> None:
        from sleuth.train.runlog import append_jsonl

        metrics = step_metrics(record, self.config.num_generations)
        metrics["rollout_seconds"] = round(seconds, 2)
        append_jsonl(
            self.out / "train_log.jsonl",
            {"step": step, **{METRIC + k: v for k, v in metrics.items()}},
        )
        for index, proposal in enumerate(record.proposals):
            append_jsonl(
                self.out / "proposals.jsonl",
                {
                    "step": step,
                    "proposer_reward": record.proposer_rewards[index],
                    "solver_rewards": record.solver_groups.get(index),
                    **asdict(proposal),
                },
            )
        accuracy = metrics["solver_accuracy"]
        self.log(
            f"step {step}/{trainer.state.max_steps}: {metrics['proposals']} proposals, "
            f"{metrics['verified']} verified ({metrics['acceptance_rate']:.0%}), solver accuracy "
            f"{'-' if accuracy is None else f'{accuracy:.2f}'}, proposer reward "
            f"{metrics['proposer_reward']:.2f}, rollouts {seconds:.0f} s"
        )


def pick_solver_groups(solver_rewards: dict[int, list[float]], slots: int) -> list[int]:
    """The verified questions whose solver groups are trained on: groups with a reward spread
    first (they carry the gradient), then in proposal order; at most ``slots``."""
    order = sorted(solver_rewards, key=lambda i: (len(set(solver_rewards[i])) < 2, i))
    return order[:slots]


def _spread_share(groups: Sequence[Sequence[float]]) -> float | None:
    return round(sum(len(set(g)) > 1 for g in groups) / len(groups), 3) if groups else None


def step_metrics(record: StepRecord, group: int) -> dict[str, Any]:
    """Per-step log: acceptance, solver accuracy, proposer reward, and how many groups of each
    role had differing rewards (the share that gives GRPO a gradient)."""
    proposals = record.proposals
    solved = [x for rewards in record.solver_groups.values() for x in rewards]
    proposer_groups = [
        record.proposer_rewards[i : i + group] for i in range(0, len(proposals), group)
    ]
    rejected: dict[str, int] = {}
    for p in proposals:
        if p.rejected:
            rejected[p.rejected] = rejected.get(p.rejected, 0) + 1
    return {
        "proposals": len(proposals),
        "verified": sum(p.accepted for p in proposals),
        "acceptance_rate": sum(p.accepted for p in proposals) / len(proposals),
        "too_easy": sum(p.too_easy for p in proposals if p.accepted),
        "solver_accuracy": sum(solved) / len(solved) if solved else None,
        "proposer_reward": sum(record.proposer_rewards) / len(proposals),
        "proposer_groups_with_spread": _spread_share(proposer_groups),
        "solver_groups_with_spread": _spread_share(
            [record.solver_groups[i] for i in record.trained_solver_groups]
        ),
        "solver_groups_trained": len(record.trained_solver_groups),
        "rejected": rejected,
    }


def selfplay_reward(prompts, completions, selfplay_reward, **kwargs) -> list[float]:
    """The TRL reward: each row's role reward, computed by the rollout for the whole step."""
    return [float(r) for r in selfplay_reward]


def build_dataset(seeds: dict[str, Document]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"prompt": prompt} for prompt in seeds])


def seed_prompts(engine: Any, config: SelfPlayTrainConfig) -> dict[str, Document]:
    """Seed topics drawn from the index (two per proposer group: half of each batch's prompts
    are solver slots), keyed by the proposer's task text for that seed."""
    wanted = max(8, 2 * config.steps * config.proposals_per_step)
    picker = QuestionSynthesizer(None, engine, replace(config.synth_settings(), n=wanted))  # type: ignore[arg-type]
    seeds = {proposer_task(doc, config.hops): doc for doc in picker.seeds()}
    if len(seeds) < 2 * config.proposals_per_step:
        raise SleuthError(
            f"the index has {len(seeds)} distinct seed topics; a step needs "
            f"{2 * config.proposals_per_step} (lower --proposals-per-step)"
        )
    return seeds


def build_trainer(
    config: SelfPlayTrainConfig,
    engine: Any,
    model: Any,
    tokenizer: Any,
    generate: Generate | None = None,
    trainer_class_override: type | None = None,
    log: Callable[[str], None] = print,
    seed_engine: Any = None,
) -> Any:
    """The GRPO trainer; ``seed_engine`` (default ``engine``) is the real index seeds come from."""
    from sleuth.train.grpo import episode_tokens, rollout_trainer, trainer_grpo_args

    episode = config.episode
    seeds = seed_prompts(seed_engine if seed_engine is not None else engine, config)
    proposer_turns = config.hops + 4  # the loop's max turns, a forced answer, the question
    args = trainer_grpo_args(
        config,
        episode_tokens(proposer_turns, episode.max_new_tokens, episode.top_k),
        questions_per_step=2 * config.proposals_per_step,
    )
    rollout = SelfPlayRolloutFunc(engine, tokenizer, config, seeds, generate=generate, log=log)
    dataset = build_dataset(seeds)
    return rollout_trainer(
        args,
        model,
        tokenizer,
        selfplay_reward,
        dataset,
        rollout,
        trainer_class_override,
        run=config,
    )


class SelfPlayRun(GRPORun):
    """``train selfplay``'s parts of the run skeleton (``sleuth.train.run``)."""

    config: SelfPlayTrainConfig

    def __init__(
        self, config: SelfPlayTrainConfig, index: Any, log: Callable[[str], None] = print
    ) -> None:
        super().__init__(config, log)
        self.index = index  # the real index: seed topics come from it, not from a simulation

    def build_trainer(self, model: Any, tokenizer: Any, name: str) -> Any:
        config, engine = self.config, self.engine
        return build_trainer(config, engine, model, tokenizer, log=self.log, seed_engine=self.index)

    def summarise(
        self, trainer: Any, history: list[dict[str, Any]], seconds: float, name: str
    ) -> dict[str, Any]:
        peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return self.results(name, summarise_selfplay(history), seconds, peak_rss_mb=peak)

    def curve(self, history: list[dict[str, Any]]) -> bytes:
        return selfplay_curve(history)


def train_selfplay(
    config: SelfPlayTrainConfig, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run (or resume) self-play GRPO; ``results.json`` and ``curve.png`` beside the checkpoints."""
    if config.index and not Path(config.index).is_dir():  # before the heavy imports
        raise SleuthError(f"--index {config.index}: no such index folder")
    from sleuth.search.factory import open_engine, with_wrappers
    from sleuth.search.simulated.schedule import parse_schedule

    if config.noise_schedule:
        parse_schedule(config.noise_schedule)  # a bad schedule fails before the model loads
    index = open_engine(config.index)  # the bundled corpus without --index
    # Both roles search the index, or --simulate over it (no benchmark gold: each solver
    # episode's gold is its proposal's evidence, set per episode).
    engine = with_wrappers(index, simulate=config.simulate).engine
    return SelfPlayRun(config, index.engine, log).start().finish(engine)


def summarise_selfplay(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step curves and run totals from the training log (a resumed step's redo wins)."""
    steps = [r for r in history if METRIC + "proposals" in r]

    def series(key: str) -> list[Any]:
        return [r.get(METRIC + key) for r in steps]

    proposals, verified = sum(series("proposals")), sum(series("verified"))
    rejected: dict[str, int] = {}
    for r in steps:
        for reason, count in (r.get(METRIC + "rejected") or {}).items():
            rejected[reason] = rejected.get(reason, 0) + int(count)
    accuracy = [a for a in series("solver_accuracy") if a is not None]
    spread = [s for s in series("proposer_groups_with_spread") if s is not None]
    solver_spread = [s for s in series("solver_groups_with_spread") if s is not None]
    return {
        "steps": len(steps),
        "proposals": proposals,
        "verified": verified,
        "acceptance_rate": round(verified / proposals, 3) if proposals else None,
        "solver_accuracy_mean": round(sum(accuracy) / len(accuracy), 3) if accuracy else None,
        "acceptance_rate_per_step": series("acceptance_rate"),
        "solver_accuracy_per_step": series("solver_accuracy"),
        "proposer_reward_per_step": series("proposer_reward"),
        "proposer_groups_with_reward_spread": round(sum(spread) / len(spread), 3)
        if spread
        else None,
        "solver_groups_with_reward_spread": round(sum(solver_spread) / len(solver_spread), 3)
        if solver_spread
        else None,
        "solver_groups_trained": sum(series("solver_groups_trained")),
        "rollout_seconds_per_step": series("rollout_seconds"),
        "rejected_because": rejected,
        "loss_per_step": [r.get("loss") for r in steps],
        "loss_passes_skipped": skipped_share(steps),
    }


def selfplay_curve(history: list[dict[str, Any]]) -> bytes:
    """Acceptance rate, solver accuracy and proposer reward per step (PNG bytes); a step with
    no verified question has no solver accuracy and leaves a gap."""
    steps = [r for r in history if METRIC + "proposals" in r]
    xs = [r["step"] for r in steps]

    def draw(axes: Any) -> None:
        for key, label, style in (
            ("acceptance_rate", "acceptance rate", "o-"),
            ("solver_accuracy", "solver accuracy", "s-"),
            ("proposer_reward", "proposer reward", "^-"),
        ):
            values = [r.get(METRIC + key) for r in steps]
            axes.plot(xs, [float("nan") if v is None else v for v in values], style, label=label)

    title = "Search self-play (one policy, proposer and solver)"
    return png(draw, title, ylim=(-0.05, 1.05))


def load_history_lines(path: Path) -> list[dict[str, Any]]:
    """The proposals a run wrote (``proposals.jsonl``), for reports and tests."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
