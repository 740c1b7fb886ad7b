"""Multi-turn rollouts for GRPO through the one agent loop, recorded token by token.

The agent loop talks to a ``PolicyLLM`` that generates with the model being trained and records
the exact token stream the model conditioned on: the first prompt, then alternately the model's
own tokens (loss mask 1) and everything the environment added — retrieved information, the chat
template's turn markers, a closing tag the loop appended (mask 0). The model is fed that stream,
not a re-rendered conversation, so what is trained on is exactly what was sampled. A
simulated user's reply to an ``ask`` is the environment's too (``sleuth.train.clarify``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.agent.config import AgentConfig
from sleuth.agent.loop import Agent
from sleuth.agent.trajectory import Trajectory
from sleuth.agent.users import SimulatedUser
from sleuth.errors import SleuthError
from sleuth.llm.base import LLM, Completion, GenerationConfig, Message, Usage
from sleuth.llm.transformers_local import render_for_template
from sleuth.search.base import SearchEngine

# Generates continuation token ids for a token stream: (ids, config) -> new ids.
Generate = Callable[[list[int], GenerationConfig], list[int]]
# A fresh simulated user for an episode of this question, or None (nobody answers ``ask``).
UserForQuestion = Callable[[str], SimulatedUser | None]
_SENTINEL = "\u2063SLEUTH-TURN-END\u2063"


@dataclass
class TokenStream:
    """One episode's tokens: ``prompt_ids``, then ``completion_ids`` with a parallel loss mask."""

    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)  # 1 = the model's own token, 0 = environment

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    def add(self, ids: Sequence[int], model_made: bool) -> None:
        self.completion_ids += ids
        self.mask += [int(model_made)] * len(ids)

    def truncate(self, length: int) -> None:
        del self.completion_ids[length:], self.mask[length:]


class PolicyLLM:
    """The ``LLM`` protocol over the policy being trained, for one episode (it keeps its stream)."""

    def __init__(self, generate: Generate, tokenizer: Any, name: str = "policy") -> None:
        self.generate, self.tokenizer, self.name = generate, tokenizer, name
        self.stream = TokenStream()
        self._last_text = ""  # what the model's last turn decoded to (no special tokens)
        self._last_ended_with_eos = False
        self._started = False
        self._messages_seen = 0  # messages in the last call: the same count again is a retry
        self._turn_start = 0  # completion length where the last model turn began

    def _render(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(
            render_for_template(messages), add_generation_prompt=True, tokenize=False
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def environment_text(self, messages: list[Message]) -> str:
        """What the environment adds after the model's last turn, as template text.

        Rendered with a sentinel in place of the model's last message, so the turn-end markers,
        the new messages and the next generation prompt come out of the model's own chat
        template, whatever it is; text the loop appended to the model's turn (a closing tag cut
        by a stop string) comes first.
        """
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        spoken = messages[last].get("content") or ""
        with_sentinel = [*messages[:last], {"role": "assistant", "content": _SENTINEL}]
        rendered = self._render(with_sentinel + list(messages[last + 1 :]))
        if _SENTINEL not in rendered:
            raise SleuthError("the chat template drops the assistant's turn; cannot train on it")
        tail = rendered.split(_SENTINEL, 1)[1]
        appended = spoken[len(self._last_text) :] if spoken.startswith(self._last_text) else ""
        eos = self.tokenizer.eos_token or ""
        if self._last_ended_with_eos and eos and tail.startswith(eos):
            tail = tail[len(eos) :]  # the model already closed its turn with EOS
        return appended + tail

    def _step(self, messages: list[Message], config: GenerationConfig) -> Completion:
        started = time.perf_counter()
        if not self._started:
            self.stream.prompt_ids = self._encode(self._render(messages))
            self._started = True
        elif len(messages) == self._messages_seen:
            # The loop asks again for the same turn (a thought cut at max tokens): the first
            # try leaves the stream, so the tokens trained on are the ones the retry saw.
            self.stream.truncate(self._turn_start)
        else:
            self.stream.add(self._encode(self.environment_text(messages)), model_made=False)
        self._messages_seen = len(messages)
        self._turn_start = len(self.stream.completion_ids)
        new_ids = self.generate(self.stream.ids, config)
        self.stream.add(new_ids, model_made=True)
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        self._last_text = text
        self._last_ended_with_eos = bool(new_ids) and new_ids[-1] == self.tokenizer.eos_token_id
        finish = "length" if len(new_ids) >= config.max_tokens else "stop"
        for stop in config.stop:  # OpenAI semantics: the stop string is not returned
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        return Completion(
            text=text,
            usage=Usage(
                prompt_tokens=len(self.stream.ids) - len(new_ids), completion_tokens=len(new_ids)
            ),
            latency_s=time.perf_counter() - started,
            finish_reason=finish,
            model=self.name,
            constraint=(
                config.constraint.describe()
                if config.constraint and getattr(self.generate, "supports_constraint", False)
                else ""
            ),
        )

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion:
        if tools:
            raise SleuthError("agent training uses the tag action format, not JSON tool calls")
        return await asyncio.to_thread(self._step, list(messages), config or GenerationConfig())

    async def aclose(self) -> None:
        return None


class ModelGenerator:
    """``Generate`` over a transformers model; one generation at a time (the model is shared).

    The batched alternative, used by training, is ``sleuth.train.batched_generate``."""

    supports_constraint = True

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self._lock = threading.Lock()

    def __call__(self, ids: list[int], config: GenerationConfig) -> list[int]:
        import torch

        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_tokens,
            "do_sample": config.temperature > 0,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if config.temperature > 0:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=0)
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=self.tokenizer)
        from sleuth.llm.grammar_mask import grammar_generate_kwargs

        kwargs.update(
            grammar_generate_kwargs(self.model, self.tokenizer, config.constraint, 1, len(ids))
        )
        inputs = torch.tensor([ids])
        with self._lock, torch.no_grad():
            was_training = self.model.training
            self.model.eval()
            try:
                output = self.model.generate(
                    input_ids=inputs, attention_mask=torch.ones_like(inputs), **kwargs
                )
            finally:
                self.model.train(was_training)
        return output[0, len(ids) :].tolist()


@dataclass
class Rollout:
    trajectory: Trajectory
    stream: TokenStream


async def run_episodes(
    questions: Sequence[str],
    generate: Generate,
    tokenizer: Any,
    search: SearchEngine,
    config: AgentConfig,
    concurrency: int = 4,
    reader: LLM | None = None,
    users: UserForQuestion | None = None,
) -> list[Rollout]:
    """One agent episode per question (repeats allowed: a GRPO group), streams recorded. With a
    frozen ``reader`` (``train searcher``) the final read is the reader's call: a separate
    prompt to a separate model, outside the policy's stream. ``users`` gives each episode
    whose actions include ``ask`` its own simulated user (its exchanges go into the
    trajectory's ``metadata["user"]``, its replies into the stream as environment tokens)."""
    if config.action_format != "tags":
        raise SleuthError("agent training uses action_format='tags'")
    if config.final_read and reader is None:
        raise SleuthError(
            "final_read is for inference: a rollout's tokens are one conversation, and the "
            "final read is a separate prompt (set final_read=0 for training, or train a "
            "searcher with a frozen reader)"
        )
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(question: str) -> Rollout:
        async with gate:
            policy = PolicyLLM(generate, tokenizer)
            user = users(question) if users is not None and "ask" in config.actions else None
            agent = Agent(policy, search, config, ask_user=user, reader=reader)
            trajectory = await agent.run(question)
            return Rollout(trajectory, policy.stream)

    return list(await asyncio.gather(*(one(q) for q in questions)))


def as_trl_output(rollouts: Sequence[Rollout], eos_token_id: int | None) -> dict[str, Any]:
    """What TRL's ``rollout_func`` returns; ``env_mask`` becomes the trainer's loss mask.

    An episode that produced no model token (it failed before generating) gets one EOS token
    that is masked out, so the batch stays aligned and contributes no gradient.
    """
    prompt_ids, completion_ids, masks, trajectories = [], [], [], []
    for rollout in rollouts:
        ids, mask = list(rollout.stream.completion_ids), list(rollout.stream.mask)
        if not ids and eos_token_id is not None:
            ids, mask = [eos_token_id], [0]
        prompt_ids.append(list(rollout.stream.prompt_ids))
        completion_ids.append(ids)
        masks.append(mask)
        trajectories.append(rollout.trajectory.to_json())
    return {
        "prompt_ids": prompt_ids,
        "completion_ids": completion_ids,
        "logprobs": None,
        "env_mask": masks,
        "trajectory": trajectories,
    }


class AgentRolloutFunc:
    """TRL's ``rollout_func``: each prompt (a question) becomes one agent episode."""

    def __init__(
        self,
        search: SearchEngine,
        tokenizer: Any,
        config: AgentConfig,
        concurrency: int = 4,
        generate: Generate | None = None,
        reader: LLM | None = None,
        users: UserForQuestion | None = None,
    ) -> None:
        self.search, self.tokenizer, self.config = search, tokenizer, config
        self.concurrency, self._generate, self.reader = concurrency, generate, reader
        self.users = users
        self.last: list[Rollout] = []  # the latest batch, for logging and tests

    async def episodes(self, questions: list[str], generate: Generate) -> list[Rollout]:
        """One episode per question with ``generate`` (the trainer's model, or a snapshot's)."""
        return await run_episodes(
            questions,
            generate,
            self.tokenizer,
            self.search,
            self.config,
            self.concurrency,
            self.reader,
            self.users,
        )

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        questions = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
        if self._generate is None:  # one batcher for the whole run: a group decodes together
            from sleuth.train.batched_generate import BatchedGenerator

            self._generate = BatchedGenerator(
                trainer.accelerator.unwrap_model(trainer.model),
                self.tokenizer,
                max_batch=max(1, self.concurrency),
            )
        generate = self._generate
        started = time.perf_counter()
        self.last = asyncio.run(self.episodes(questions, generate))
        metrics = getattr(trainer, "_metrics", None)
        if metrics is not None:  # what the trainer waited for its rollouts (async logs it too)
            metrics["train"]["rollout/seconds"].append(time.perf_counter() - started)
        return as_trl_output(self.last, self.tokenizer.eos_token_id)
