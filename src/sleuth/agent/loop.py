"""The agent loop: the only one. ``sleuth ask``, evaluation and training all run this code.

Each turn: the model speaks, its output is parsed into one action, the environment executes it
and answers with an observation. Every step is recorded in the trajectory.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sleuth.agent import prompts
from sleuth.agent.actions import ACTION_SPECS, SPECS
from sleuth.agent.config import AgentConfig
from sleuth.agent.context import Fitted, fit, token_counter
from sleuth.agent.executors import EXECUTORS, AskUser, EpisodeStop
from sleuth.agent.final_read import reading_order
from sleuth.agent.grammar import ActionGrammar
from sleuth.agent.knowledge import KnowledgeCache
from sleuth.agent.parsing import THINK, Action, parse_json, parse_tags
from sleuth.agent.spans import candidate_spans
from sleuth.agent.trajectory import HitRef, Step, Trajectory
from sleuth.agent.users import SimulatedUser
from sleuth.errors import QueryError, SleuthError
from sleuth.llm.base import LLM, Completion, GenerationConfig, Message
from sleuth.search.base import SearchEngine
from sleuth.types import Hit

__all__ = ["EARLY_BLOCKED", "Agent", "AskUser", "Episode", "EpisodeStop"]

# Actions that need something retrieved first: not offered before min_searches searches.
EARLY_BLOCKED = tuple(spec.name for spec in ACTION_SPECS if spec.after_search)
SEARCH_BUDGETED = ("search", "follow")  # actions that spend the episode's search budget
# Limits after which the episode still gets one answer-only turn (``force_answer``);
# "call_budget": a tree search (``sleuth.agent.strategies``) spent its model calls.
FORCED_AFTER = ("max_turns", "max_searches", "wall_time", "call_budget")


class Agent:
    """The loop's driver for whole episodes (``run``).

    ``reader``: a second, frozen model that answers from documents (s3's split, arXiv
    2505.14146): ``llm`` is then the *searcher*. The rule: the reader makes every call whose
    prompt is an answer prompt, i.e. whose system prompt offers the ``answer`` action alone;
    those are the final read (``final_read``: RAG's prompt over the documents the episode saw)
    and every turn of a configuration whose only action is ``answer`` (the ``rag`` and
    ``closed_book`` methods: the question, with or without the prefetched documents, in RAG's
    own prompt). The searcher makes every call of a searching conversation, including its
    answer-only turns (``forced_answer``, the turn after a repeated query): their prompt is
    the searcher's own conversation, in its protocol, not an answer prompt; with
    ``final_read`` the reader then answers from the documents anyway. Each model step records
    its ``role`` and the trajectory's metadata names the reader and sums tokens and model
    seconds per role (``Trajectory.usage_by_role``). Without a reader nothing changes: one model
    makes every call and steps carry no role.

    ``run`` is ReAct: one greedy chain of turns. Other strategies (best-of-n, beam, MCTS)
    drive cloned ``Episode``s from ``sleuth.agent.strategies.run_strategy``.
    """

    def __init__(
        self,
        llm: LLM,
        search: SearchEngine | None,
        config: AgentConfig | None = None,
        ask_user: AskUser | None = None,
        reader: LLM | None = None,
    ) -> None:
        self.llm, self.search, self.config, self.ask_user = (
            llm,
            search,
            config or AgentConfig(),
            ask_user,
        )
        self.reader = reader
        needs_engine = any(SPECS[a].engine for a in self.config.actions) or self.config.prefetch_k
        if needs_engine and search is None:
            raise SleuthError("this agent configuration searches, so it needs a search engine")

    async def run(
        self,
        question: str,
        *,
        episode_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_step: Callable[[Step], None] | None = None,
        prefetch_query: str | None = None,
    ) -> Trajectory:
        """One episode on ``question``. ``prefetch_query``: what the prefetch (``prefetch_k``)
        searches instead of the question, when the question is a long task (the proposer's)."""
        episode = Episode(self, question, on_step, prefetch_query)
        traj = episode.trajectory
        traj.episode_id = episode_id or uuid.uuid4().hex[:12]
        traj.metadata = dict(metadata or {})
        stop = None
        try:
            await episode.prefetch()
            await episode.loop()
        except EpisodeStop as caught:
            stop = caught
        await episode.finish(stop)
        return traj


class Episode:
    """State of one run: conversation, knowledge, counters and the trajectory being written.

    Public so that more than one driver can run the same loop: ``Agent.run`` (prefetch, then
    ``loop``), the viewer's replay (rebuilds the state, applies an edit, then ``loop``) and a
    future tree search (``turn`` at a time). Drivers may read and set the state attributes
    (``messages``, ``pending``, ``knowledge``, ``searches``, ``tokens``, ``trajectory``) to
    rebuild a conversation; everything else goes through the methods below.
    """

    def __init__(
        self,
        agent: Agent,
        question: str,
        on_step: Callable[[Step], None] | None,
        prefetch_query: str | None = None,
    ):
        self.agent, self.cfg, self.on_step = agent, agent.config, on_step
        self.tags = self.cfg.action_format == "tags"
        # A searcher (``select``) names documents of any search by one episode-wide number.
        self.closing = "select" if "select" in self.cfg.actions else "answer"
        self.knowledge = KnowledgeCache(
            self.cfg.doc_chars, numbered_across_searches=self.closing == "select"
        )
        self.question = question
        self.prefetch_query = prefetch_query or question
        system = (
            prompts.tag_system_prompt(self.cfg.actions, self.cfg.prompt_example)
            if self.tags
            else prompts.json_system_prompt(self.cfg.actions, self.cfg.prompt_example)
        )
        self.tools = None if self.tags else prompts.json_tools(self.cfg.actions)
        self.messages: list[Message] = [{"role": "system", "content": system}]
        self.pending: list[Message] = [{"role": "user", "content": question}]
        self.searches = self.tokens = self.invalid_streak = 0
        self.turns = 0  # model turns taken (``loop``, or a driver stepping ``turn``)
        self.actions: tuple[str, ...] = self.cfg.actions  # enabled in the current turn
        self.queries: set[str] = set()  # normalised queries searched so far
        self.answer_only = False  # set by a repeated query when answer_on_repeat
        self.started = time.perf_counter()
        self.fitted: Fitted | None = None  # the last call's prompt under a context budget
        self.trajectory = Trajectory(
            episode_id="",
            question=question,
            config=self.cfg.to_dict(),
            model=getattr(agent.llm, "name", ""),
            started_at=time.time(),
        )

    def clone(self, *, temperature: float | None = None, seed: int | None = None) -> Episode:
        """An independent copy of this state for a tree search to step on: conversation,
        pending observations, knowledge, counters, queries and the trajectory so far are deep
        copies; the agent (its models and search engine), the clock and the configuration are
        shared. ``temperature``/``seed`` set the copy's own decoding (a sampled branch); the
        copy reports no steps (``on_step``): its driver reports the path it chooses."""
        twin = copy.copy(self)
        for name in ("messages", "pending", "knowledge", "queries", "trajectory"):
            setattr(twin, name, copy.deepcopy(getattr(self, name)))
        twin.on_step = None
        if temperature is not None or seed is not None:
            twin.cfg = replace(
                self.cfg,
                temperature=self.cfg.temperature if temperature is None else temperature,
                seed=seed,
            )
        return twin

    # -- helpers ------------------------------------------------------------------------------
    def record(self, step: Step) -> None:
        """Append ``step`` to the trajectory and report it (``on_step``): every step of every
        driver goes through here, so live displays see what the trajectory keeps."""
        self.trajectory.steps.append(step)
        if self.on_step:
            self.on_step(step)

    def role(self, fresh: bool = False) -> str:
        """Which model makes the next call (``Agent``'s rule): "reader" for an answer prompt (a
        ``fresh`` one, the final read's, or any turn when ``answer`` is the only configured
        action), else "searcher"; "" when the agent has no reader (one model does all)."""
        if self.agent.reader is None:
            return ""
        return "reader" if fresh or self.cfg.actions == ("answer",) else "searcher"

    def _stops(self) -> list[str]:
        return [f"</{a}>" for a in self.cfg.actions] if self.tags else []

    async def search(self, query: str, k: int) -> list[Hit]:
        """``k`` hits for ``query`` from the engine, off the event loop. A bad query raises
        ``QueryError`` (the model's mistake, answered with an observation); any other failure
        ends the episode (``EpisodeStop("search_error")``)."""
        try:
            return await asyncio.to_thread(self.agent.search.search, query, k)  # type: ignore[union-attr]
        except QueryError:
            raise  # a bad query is the model's mistake: it gets a corrective observation
        except SleuthError as exc:
            raise EpisodeStop("search_error", str(exc)) from None
        except Exception as exc:  # an engine/server failure ends the episode, recorded
            raise EpisodeStop("search_error", f"{type(exc).__name__}: {exc}") from None

    # -- phases -------------------------------------------------------------------------------
    async def prefetch(self) -> None:
        """Search the question (or ``prefetch_query``) before the first turn (``prefetch_k``)."""
        if not self.cfg.prefetch_k:
            return
        started = time.perf_counter()
        try:
            hits = await self.search(self.prefetch_query, self.cfg.prefetch_k)
        except QueryError as exc:
            raise EpisodeStop("search_error", str(exc)) from None
        text, refs = self.knowledge.render_hits(hits)
        observation = f"<information>\n{text}\n</information>"
        self.pending = [{"role": "user", "content": f"{observation}\n\n{self.question}"}]
        self.record(
            Step(
                index=0,
                prompt_delta=[],
                model_output="",
                action="search",
                argument=self.prefetch_query,
                hits=refs,
                observation=observation,
                tool_seconds=time.perf_counter() - started,
            )
        )
        self.searches += 1

    async def loop(self) -> None:
        """Turns until the episode is over; raises ``EpisodeStop`` at a limit."""
        while True:
            if await self.next_turn():
                return

    async def next_turn(self) -> bool:
        """``turn`` after checking the limits (``EpisodeStop`` when one is reached), counted in
        ``turns``: the loop's unit, and a tree search's step."""
        self.check_limits(self.turns)
        self.turns += 1
        return await self.turn()

    async def finish(self, stop: EpisodeStop | None) -> None:
        """Close the episode after its last turn (``stop``: the limit or failure that ended it,
        None when it answered): record the stop, force one answer after a limit
        (``force_answer``), the final read (``final_read``), the reader's usage, a simulated
        user's exchanges and the time."""
        cfg, traj = self.cfg, self.trajectory
        if stop is not None:
            traj.stop_reason = stop.reason
            if stop.error:
                traj.metadata["error"] = stop.error
            if stop.reason in FORCED_AFTER and cfg.force_answer:
                await self.forced_answer()
        if cfg.final_read:
            await self.final_read()
        if self.agent.reader is not None:
            traj.metadata["reader"] = getattr(self.agent.reader, "name", "")
            traj.metadata["roles"] = traj.usage_by_role()
        if isinstance(self.agent.ask_user, SimulatedUser):  # every exchange, and how answered
            traj.metadata["user"] = self.agent.ask_user.record()
        traj.seconds = time.perf_counter() - self.started

    def check_limits(self, turns: int) -> None:
        """Raise ``EpisodeStop`` when ``turns`` taken, the tokens or the wall time are spent."""
        cfg = self.cfg
        if turns >= cfg.max_turns:
            raise EpisodeStop("max_turns")
        if self.tokens >= cfg.max_tokens:
            raise EpisodeStop("max_tokens")
        if time.perf_counter() - self.started >= cfg.wall_time_s:
            raise EpisodeStop("wall_time")

    async def turn(self) -> bool:
        """One model turn: ask the model, parse its action, execute and record it; True when
        the episode is over. The unit a driver that branches (tree search) steps by."""
        actions = self._turn_actions()
        completion, llm_seconds, delta = await self._call_model(self._offered(actions))
        action = self._parse(completion, actions)
        if action.name == "invalid" and actions != self.cfg.actions:
            action = self._explain_early_answer(action)
        self._remember_output(completion, action)
        started = time.perf_counter()
        step = self._model_step(completion, action, llm_seconds, delta)
        try:
            return await self.execute(action, step)
        finally:
            step.tool_seconds = time.perf_counter() - started
            self.record(step)

    def _turn_actions(self) -> tuple[str, ...]:
        """The enabled actions, without ``answer`` and ``judge`` until ``min_searches`` searches
        were made: judging the sufficiency of nothing retrieved let the 135M model say "yes"
        four times over and never search (the demo's agent_judge row: 0.02 searches/q)."""
        cfg = self.cfg
        if self.answer_only:
            return (self.closing,)
        if "search" in cfg.actions and self.searches < min(cfg.min_searches, cfg.max_searches):
            return tuple(a for a in cfg.actions if a not in EARLY_BLOCKED)
        return cfg.actions

    def _offered(self, actions: tuple[str, ...]) -> tuple[str, ...]:
        """What the grammar offers: no ``search`` (nor ``follow``) once the budget is spent, so a
        constrained model answers instead of ending the episode on a search it may not make.
        (Parsing still accepts it: an unconstrained model's extra search stops the episode.)"""
        if self.searches >= self.cfg.max_searches:  # follow spends the search budget too
            left = tuple(a for a in actions if a not in SEARCH_BUDGETED)
            return left or actions
        return actions

    def _explain_early_answer(self, action: Action) -> Action:
        """An answer or judgement before ``min_searches`` (unconstrained backends) says why not."""
        if not any(f"the {name} action" in action.error for name in EARLY_BLOCKED) and (
            "'answer'" not in action.error
        ):
            return action
        n = self.cfg.min_searches
        note = f"search at least {n} time{'s' if n > 1 else ''} before judging or answering"
        return Action("invalid", error=note, call_id=action.call_id)

    def answer_choices(self, actions: tuple[str, ...]) -> tuple[str, ...]:
        """The spans an answer may be (``answer_spans``), from the documents shown so far;
        public so a driver (and its tests) can see what a turn would offer."""
        if not (self.cfg.answer_spans and "answer" in actions and self.knowledge.texts):
            return ()
        return tuple(
            candidate_spans(
                self.knowledge.texts, self.knowledge.seen.values(), self.cfg.answer_yes_no
            )
        )

    def _generation_config(
        self, actions: tuple[str, ...], think: bool, choices: tuple[str, ...]
    ) -> GenerationConfig:
        grammar = ActionGrammar(actions, think=think, answer_choices=choices)
        constraint = grammar.constraint(self.cfg.action_format) if self.cfg.constrain else None
        return GenerationConfig(
            max_tokens=min(self.cfg.max_new_tokens, max(1, self.cfg.max_tokens - self.tokens)),
            temperature=self.cfg.temperature,
            stop=[f"</{a}>" for a in actions] if self.tags else [],
            seed=self.cfg.seed,
            constraint=constraint,
        )

    async def _generate(
        self,
        config: GenerationConfig,
        choices: tuple[str, ...],
        messages: list[Message] | None = None,
    ) -> Completion:
        """One model call on the conversation (or on ``messages``, the final read's own), by
        the model whose ``role`` it is."""
        reader, fresh = self.agent.reader, messages is not None
        reads = reader is not None and self.role(fresh) == "reader"
        llm = reader if reads else self.agent.llm
        if reads:  # a frozen reader answers greedily, whatever the searcher samples at (s3)
            config = replace(config, temperature=0.0)
        try:
            completion = await llm.complete(
                self.prompt(llm) if messages is None else messages,
                config,
                None if self.tags else prompts.json_tools(self.actions),
            )
        except Exception as exc:  # recorded, never raised: the trajectory is still returned
            raise EpisodeStop("llm_error", f"{type(exc).__name__}: {exc}") from None
        if config.constraint is not None and not completion.constraint:
            backend = getattr(llm, "name", type(llm).__name__)
            completion.constraint = f"not enforced: backend {backend} cannot constrain"
        elif config.constraint is not None and choices:
            completion.constraint += f" (answer: one of {len(choices)} spans read)"
        self.tokens += completion.usage.completion_tokens
        return completion

    def prompt(self, llm: LLM) -> list[Message]:
        """What a call on the conversation sends: the conversation itself, or under a context
        budget its fitted copy (older observations stubbed, their documents in notes:
        ``sleuth.agent.context``), whose size the step records."""
        if not self.cfg.context_budget:
            return self.messages
        self.fitted = fit(
            self.messages,
            self.trajectory.steps,
            self.knowledge,
            self.cfg.context_budget,
            token_counter(llm),
            numbered=self.knowledge.numbered_across_searches,
        )
        return self.fitted.messages

    def _note_context(self, step: Step) -> None:
        """Record the fitted prompt's size and stubs in ``step`` and the trajectory's
        ``metadata["context"]`` (largest prompt, most observations dropped, turns over)."""
        fitted, self.fitted = self.fitted, None
        if fitted is None:
            return
        step.context_tokens, step.dropped_observations = fitted.tokens, fitted.dropped
        step.prompt_tokens = step.prompt_tokens or fitted.tokens
        meta = self.trajectory.metadata.setdefault(
            "context",
            {"budget": self.cfg.context_budget, "max_prompt_tokens": 0, "dropped_observations": 0},
        )
        meta["max_prompt_tokens"] = max(meta["max_prompt_tokens"], fitted.tokens)
        meta["dropped_observations"] = max(meta["dropped_observations"], fitted.dropped)
        if fitted.over:
            meta["over_budget_turns"] = meta.get("over_budget_turns", 0) + 1

    async def _call_model(
        self, actions: tuple[str, ...], messages: list[Message] | None = None
    ) -> tuple[Completion, float, list[Message]]:
        """The model's turn with ``actions`` offered: on the conversation, after the pending
        observations, or on ``messages`` alone (the final read), which the conversation never
        sees."""
        if messages is None:
            delta, self.pending = self.pending, []
            self.messages.extend(delta)
        else:
            delta = messages
        self.actions = actions
        started = time.perf_counter()
        think = self.cfg.think and self.tags
        choices = self.answer_choices(actions)  # once per turn: the retry offers the same
        completion = await self._generate(
            self._generation_config(actions, think, choices), choices, messages
        )
        # The thought used up the turn before a whole action tag was written (inside the
        # thought, or after it: "</think>\n<ans"): ask again for the action alone.
        cut_before_action = (
            think
            and self.cfg.constrain
            and completion.finish_reason == "length"
            and parse_tags(completion.text, actions).name == "invalid"
            and self.tokens < self.cfg.max_tokens
        )
        if cut_before_action:
            first = completion
            completion = await self._generate(
                self._generation_config(actions, False, choices), choices, messages
            )
            completion.usage.completion_tokens += first.usage.completion_tokens
            completion.usage.prompt_tokens += first.usage.prompt_tokens
            completion.constraint += (
                " (cut at max tokens before its action; retried without thought)"
            )
        return completion, time.perf_counter() - started, delta

    def _parse(self, completion: Completion, actions: tuple[str, ...]) -> Action:
        action = (
            parse_tags(completion.text, actions) if self.tags else parse_json(completion, actions)
        )
        return self._maybe_untagged_answer(completion.text, action)

    def _model_step(
        self,
        completion: Completion,
        action: Action,
        llm_seconds: float,
        delta: list[Message],
        fresh: bool = False,
    ) -> Step:
        step = Step(
            index=len(self.trajectory.steps),
            prompt_delta=delta,
            model_output=completion.text,
            action=action.name,
            argument=action.argument,
            error=action.error,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            llm_seconds=llm_seconds,
            constraint=completion.constraint,
            fresh_context=fresh,
            role=self.role(fresh),
        )
        if not fresh:
            self._note_context(step)
        return step

    def _maybe_untagged_answer(self, text: str, action: Action) -> Action:
        if (
            self.cfg.untagged_answer
            and self.tags
            and action.name == "invalid"
            and action.error.startswith("no action found")
            and (prose := THINK.sub(" ", text).strip())
        ):
            return Action("answer", prose, error="untagged output taken as the answer")
        return action

    def _remember_output(self, completion: Completion, action: Action) -> None:
        """Append the model's turn to the conversation, with the closing tag the stop cut off."""
        if self.tags:
            text = completion.text
            if action.name != "invalid" and f"</{action.name}>" not in text.lower():
                text += f"</{action.name}>"
            self.messages.append({"role": "assistant", "content": text})
        elif completion.tool_calls or action.call_id:
            calls = completion.tool_calls[:1]
            self.messages.append(
                {
                    "role": "assistant",
                    "content": completion.text or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in calls
                    ],
                }
            )
        else:
            self.messages.append({"role": "assistant", "content": completion.text})

    def observe(self, text: str, action: Action, wrap: bool = False) -> None:
        """Queue ``text`` as the environment's answer to ``action`` for the next model call:
        a user message in the tags format (inside ``<information>`` when ``wrap``), the tool
        message answering the call in the JSON format."""
        if self.tags:
            content = f"<information>\n{text}\n</information>" if wrap else text
            self.pending.append({"role": "user", "content": content})
        elif action.call_id:
            self.pending.append({"role": "tool", "tool_call_id": action.call_id, "content": text})
        else:
            self.pending.append({"role": "user", "content": text})

    async def execute(self, action: Action, step: Step) -> bool:
        """Run ``action``, writing its observation and errors into ``step`` (which the caller
        records); True when the episode is over. Each action runs its executor
        (``sleuth.agent.executors``); an invalid one is answered here. Replay calls it for an
        edited action."""
        if action.name == "invalid":
            self.invalid_streak += 1
            step.observation = f"Invalid action: {action.error}."
            self.observe(step.observation, action)
            if self.invalid_streak >= self.cfg.max_invalid:
                raise EpisodeStop("max_invalid", action.error)
            return False
        self.invalid_streak = 0
        return await EXECUTORS[action.name](self, action, step)

    async def forced_answer(self) -> None:
        """One last turn that may only answer, or only select for a searcher (recorded as its
        own step)."""
        closing = (self.closing,)
        self.pending.append(
            {"role": "user", "content": prompts.force_instruction(*closing, self.tags)}
        )
        try:
            completion, llm_seconds, delta = await self._call_model(closing)
        except EpisodeStop:
            return
        action = self._parse(completion, closing)
        step = self._model_step(completion, action, llm_seconds, delta)
        if action.name == "select":
            limit = self.trajectory.stop_reason  # the limit that ended the episode stays its reason
            await self.execute(action, step)
            self.trajectory.stop_reason = limit or self.trajectory.stop_reason
            self.trajectory.metadata["forced_select"] = True
        self.record(step)
        if action.name == "answer":
            self.trajectory.answer = action.argument
            self.trajectory.metadata["forced_answer"] = True

    async def final_read(self) -> None:
        """Answer once more from the documents seen (``final_read``), in a fresh answer-only
        prompt like RAG's. Its answer replaces the conversation's, which stays in the metadata;
        the step is marked ``fresh_context``: it did not continue the conversation."""
        searches = [[hit.id for hit in s.hits] for s in self.trajectory.retrievals if s.hits]
        ids = reading_order(searches, self.cfg.final_read)
        selected = self.trajectory.metadata.get("selected")
        if selected and self.cfg.read_selection_only:  # the selection alone (s3's reader)
            ids = selected[: self.cfg.final_read]  # run_select keeps each id once
        elif selected is not None:  # a searcher's choice first, the reading order after it
            everything = reading_order(searches, len(self.knowledge.seen))
            ids = list(dict.fromkeys([*selected, *everything]))[: self.cfg.final_read]
        refs: dict[str, HitRef] = {}
        for search in self.trajectory.retrievals:
            for hit in search.hits:
                refs.setdefault(hit.id, hit)  # as first retrieved
        if not ids:
            return
        example = self.cfg.prompt_example
        if self.cfg.read_prompt_example is not None:
            example = self.cfg.read_prompt_example
        system = (
            prompts.tag_system_prompt(("answer",), example)
            if self.tags
            else prompts.json_system_prompt(("answer",), example)
        )
        information = f"<information>\n{self.knowledge.render_documents(ids)}\n</information>"
        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{information}\n\n{self.question}"},
        ]
        try:
            completion, llm_seconds, delta = await self._call_model(("answer",), messages)
        except EpisodeStop as stop:
            self.trajectory.metadata["final_read_error"] = stop.error
            return
        action = self._parse(completion, ("answer",))
        step = self._model_step(completion, action, llm_seconds, delta, fresh=True)
        step.hits = [  # what it read, in its order (all seen before: no new evidence)
            HitRef(doc_id, refs[doc_id].score, n, new=False, engine=refs[doc_id].engine)
            for n, doc_id in enumerate(ids, start=1)
        ]
        self.record(step)
        meta = self.trajectory.metadata
        meta["final_read"] = ids
        meta["conversation_answer"] = self.trajectory.answer
        if action.name == "answer":
            self.trajectory.answer = action.argument
