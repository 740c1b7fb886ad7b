"""Replay an episode from one of its steps after a person's edit (NExT-Search's user debug
mode): rebuild the conversation the model saw up to that step from the trajectory, apply the
edit, and let the one agent loop (``sleuth.agent.loop.Episode``) continue from there with the
same model, engine and configuration. The result is a new trajectory, linked to its parent.

Edits: ``query`` (search with this query instead), ``drop`` (remove a hit from the step's
results), ``pin`` (put a document at the top of the step's results) and ``answer`` (answer
this instead; needs neither model nor engine).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from sleuth.agent.actions import SPECS
from sleuth.agent.config import AgentConfig
from sleuth.agent.escape import neutralise
from sleuth.agent.executors import follow_key, follow_source, page_request
from sleuth.agent.loop import SEARCH_BUDGETED, Agent, Episode, EpisodeStop
from sleuth.agent.parsing import Action
from sleuth.agent.trajectory import Step, Trajectory
from sleuth.errors import DocumentNotFound, SleuthError
from sleuth.llm.base import LLM, Message
from sleuth.search.base import SearchEngine, validate_query
from sleuth.types import Hit
from sleuth.view.runs import observed_hits

EDITS = ("query", "drop", "pin", "answer")
MAX_ANSWER_CHARS = 2000


@dataclass(frozen=True)
class Edit:
    kind: str  # query | drop | pin | answer
    step: int
    text: str = ""  # the new query, the document id to drop or pin, or the new answer

    def check(self, trajectory: Trajectory) -> Step:
        """The step being edited, or a clear error saying why this edit cannot apply there."""
        if self.kind not in EDITS:
            raise SleuthError(f"edit must be one of {', '.join(EDITS)}, not {self.kind!r}")
        if not 0 <= self.step < len(trajectory.steps):
            raise SleuthError(
                f"step {self.step} does not exist (the episode has {len(trajectory.steps)})"
            )
        text = self.text.strip()
        if not text:
            raise SleuthError(f"the {self.kind} edit needs a non-empty value")
        step = trajectory.steps[self.step]
        if step.fresh_context:
            raise SleuthError(
                f"step {self.step} is the final read, not a turn of the conversation; edit an "
                "earlier step (the replay reads again at its end)"
            )
        if self.kind in ("query", "pin") and step.action != "search":
            raise SleuthError(
                f"step {self.step} is a {step.action!r} step; only search steps take this edit"
            )
        if self.kind == "query":
            validate_query(text, 1)
        if self.kind == "drop" and text not in {h.id for h in step.hits}:
            raise SleuthError(f"step {self.step} has no hit {text!r} to drop")
        if self.kind == "answer" and len(text) > MAX_ANSWER_CHARS:
            raise SleuthError(f"an answer is at most {MAX_ANSWER_CHARS} characters")
        return step


def is_prefetch(step: Step) -> bool:
    """The RAG prefetch: a search the loop made itself, before any model call (every model
    step has messages before it; the prefetch has none and no output)."""
    return (
        step.index == 0
        and step.action == "search"
        and not step.prompt_delta
        and not step.model_output
    )


def _tool_call_id(step: Step, following: Step | None) -> str:
    """JSON format: the id the model's call had, read from the answering tool message."""
    for message in following.prompt_delta if following else []:
        if message.get("role") == "tool" and message.get("tool_call_id"):
            return str(message["tool_call_id"])
    return ""


def action_text(action_format: str, name: str, argument: str) -> str:
    """What a model would have written to take this action (the text an SFT example learns)."""
    if action_format == "tags":
        return f"<{name}>{argument}</{name}>"
    call = {"name": name, "arguments": SPECS[name].arguments_for(argument)}
    return f"<tool_call>{json.dumps(call, ensure_ascii=False)}</tool_call>"


def _assistant(tags: bool, step: Step, call_id: str, edited: bool = False) -> Message:
    """The assistant turn the loop appended for ``step`` (mirrors ``_remember_output``). An
    edited step in the JSON format is a native tool call with no text, as backends send it."""
    if tags:
        text = step.model_output
        if step.action != "invalid" and f"</{step.action}>" not in text.lower():
            text += f"</{step.action}>"
        return {"role": "assistant", "content": text}
    if call_id and step.action != "invalid":
        arguments = json.dumps(SPECS[step.action].arguments_for(step.argument))
        return {
            "role": "assistant",
            "content": None if edited else step.model_output or None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": step.action, "arguments": arguments},
                }
            ],
        }
    return {"role": "assistant", "content": step.model_output}


def _documents(engine: SearchEngine, ids: list[str], scores: dict[str, float]) -> list[Hit]:
    hits = []
    for rank, doc_id in enumerate(ids, start=1):
        try:
            doc = engine.get(doc_id)
        except DocumentNotFound:
            raise SleuthError(f"the engine has no document {doc_id!r}") from None
        hits.append(Hit(doc.id, scores.get(doc.id, 0.0), doc.title, doc.text, rank))
    return hits


class _Replay:
    def __init__(
        self,
        parent: Trajectory,
        edit: Edit,
        llm: LLM,
        engine: SearchEngine | None,
        fork_id: str,
    ) -> None:
        if not parent.config:
            raise SleuthError(f"{parent.episode_id}: the trajectory has no recorded agent config")
        self.parent, self.edit = parent, edit
        prefix = parent.steps[: edit.step]
        config = AgentConfig(**parent.config)
        turns_used = sum(1 for s in prefix if not is_prefetch(s))
        remaining = max(1, config.max_turns - turns_used)
        self.config = config
        # An answer edit ends the episode at once, so it needs neither engine nor model.
        loop_config = (
            replace(config, actions=("answer",), prefetch_k=0)
            if edit.kind == "answer"
            else replace(config, max_turns=remaining)
        )
        self.episode = Episode(Agent(llm, engine, loop_config), parent.question, None)
        self.engine = engine
        traj = self.episode.trajectory
        traj.episode_id = fork_id
        traj.metadata = {
            **parent.metadata,
            "parent_episode_id": parent.episode_id,
            "parent_step": edit.step,
            "edit": asdict(edit),
        }
        traj.metadata.pop("error", None)
        traj.metadata.pop("traceback", None)

    def rebuild(self) -> None:
        """The conversation, counters and knowledge exactly as they stood before the edit."""
        ep, steps = self.episode, self.parent.steps
        ep.pending = []
        for i, step in enumerate(steps[: self.edit.step]):
            ep.messages.extend(step.prompt_delta)
            following = steps[i + 1] if i + 1 < len(steps) else None
            if not is_prefetch(step):
                ep.messages.append(_assistant(ep.tags, step, _tool_call_id(step, following)))
            ep.trajectory.steps.append(_copy(step))
            shown = observed_hits(step.observation)
            for hit in step.hits:
                ep.knowledge.seen.setdefault(hit.id, shown.get(hit.id, ("", ""))[0])
            # The documents shown, as the loop keeps them: the source of answer spans
            # (answer_spans) and of the final read (final_read).
            for doc_id, (title, text) in shown.items():
                if text:
                    as_kept = neutralise(text)
                    ep.knowledge.texts.append(as_kept)
                    ep.knowledge.documents.setdefault(doc_id, (neutralise(title), as_kept))
            if step.action in ("open", "access") and not step.error:
                doc_id = (
                    page_request(step.argument)[0] if step.action == "access" else step.argument
                )
                ep.knowledge.seen.setdefault(doc_id, "")
                ep.knowledge.texts.append(step.observation.partition("\n")[2])
            ep.searches += step.action in SEARCH_BUDGETED
            if step.action == "follow" and not step.error:  # a second follow is refused
                ep.queries.add(follow_key(follow_source(step.argument)))
            ep.tokens += step.completion_tokens

    async def apply(self) -> bool:
        """Apply the edit as step ``edit.step``; True when the episode is over."""
        ep, edit = self.episode, self.edit
        original = self.parent.steps[edit.step]
        value = edit.text.strip()
        following = (
            self.parent.steps[edit.step + 1] if edit.step + 1 < len(self.parent.steps) else None
        )
        call_id = _tool_call_id(original, following) or f"call_{uuid.uuid4().hex[:8]}"
        if edit.kind == "answer":
            ep.messages.extend(original.prompt_delta)
            step = Step(
                index=edit.step,
                prompt_delta=list(original.prompt_delta),
                model_output=action_text(self.config.action_format, "answer", value),
                action="answer",
                argument=value,
            )
            ep.record(step)
            ep.trajectory.answer, ep.trajectory.stop_reason = value, "answered"
            return True
        if self.engine is None:
            raise SleuthError(
                "replaying a search edit needs a search engine (--index or --search-url)"
            )
        if edit.kind == "query":
            return await self._query(original, value, call_id)
        return self._results(original, value, call_id)

    async def _query(self, original: Step, query: str, call_id: str) -> bool:
        ep = self.episode
        ep.messages.extend(original.prompt_delta)
        if is_prefetch(original):
            started = time.perf_counter()
            hits = await ep.search(query, self.config.prefetch_k)
            text, refs = ep.knowledge.render_hits(hits)
            observation = f"<information>\n{text}\n</information>"
            ep.pending = [{"role": "user", "content": f"{observation}\n\n{ep.question}"}]
            ep.record(
                Step(
                    0,
                    [],
                    "",
                    "search",
                    query,
                    refs,
                    observation,
                    tool_seconds=time.perf_counter() - started,
                )
            )
            ep.searches += 1
            return False
        step = Step(
            index=self.edit.step,
            prompt_delta=list(original.prompt_delta),
            model_output=action_text(self.config.action_format, "search", query),
            action="search",
            argument=query,
        )
        ep.messages.append(_assistant(ep.tags, step, call_id, edited=True))
        started = time.perf_counter()
        try:
            done = await ep.execute(Action("search", query, call_id=call_id), step)
        finally:
            step.tool_seconds = time.perf_counter() - started
            ep.record(step)
        return done

    def _results(self, original: Step, doc_id: str, call_id: str) -> bool:
        """The edited step's results: one dropped, or one pinned first; then the model resumes."""
        ep, edit = self.episode, self.edit
        ids = [h.id for h in original.hits]
        scores = {h.id: h.score for h in original.hits}
        if edit.kind == "drop":
            ids = [i for i in ids if i != doc_id]
        else:
            ids = [doc_id, *[i for i in ids if i != doc_id]]
        hits = _documents(self.engine, ids, scores)  # type: ignore[arg-type]
        text, refs = ep.knowledge.render_hits(hits)
        step = _copy(original)
        step.hits = refs
        ep.messages.extend(original.prompt_delta)
        if is_prefetch(original):
            step.observation = f"<information>\n{text}\n</information>"
            ep.pending = [{"role": "user", "content": f"{step.observation}\n\n{ep.question}"}]
        else:
            ep.messages.append(_assistant(ep.tags, original, call_id))
            step.observation = text
            ep.observe(text, Action("search", original.argument, call_id=call_id), wrap=True)
        ep.record(step)
        ep.searches += 1
        return False

    async def run(self) -> Trajectory:
        """Apply the edit, then continue like ``Agent.run`` (same stops, same forced answer)."""
        ep = self.episode
        traj = ep.trajectory
        try:
            if not await self.apply():
                await ep.loop()
        except EpisodeStop as stop:
            traj.stop_reason = stop.reason
            if stop.error:
                traj.metadata["error"] = stop.error
            if stop.reason in ("max_turns", "max_searches") and self.config.force_answer:
                await ep.forced_answer()
        if self.config.final_read and self.edit.kind != "answer":  # an edited answer stands
            await ep.final_read()
        traj.config = self.config.to_dict()
        traj.seconds = time.perf_counter() - ep.started
        return traj


def _copy(step: Step) -> Step:
    return Step(**{**asdict(step), "hits": list(step.hits)})


async def replay(
    parent: Trajectory,
    edit: Edit,
    llm: LLM | None,
    engine: SearchEngine | None,
    *,
    fork_id: str | None = None,
) -> Trajectory:
    """A new trajectory: ``parent`` up to ``edit.step``, the edit, then the model's own turns."""
    edit.check(parent)
    if llm is None and edit.kind != "answer":
        raise SleuthError("replaying needs a model (--model or --llm-url)")
    fork_id = fork_id or f"fork-{uuid.uuid4().hex[:12]}"
    state = _Replay(parent, edit, llm, engine, fork_id)  # type: ignore[arg-type]
    state.rebuild()
    return await state.run()


def fork_summary(fork: Trajectory) -> dict[str, Any]:
    """What the page shows of a fork at a glance."""
    meta = fork.metadata
    return {
        "id": fork.episode_id,
        "parent": meta.get("parent_episode_id"),
        "step": meta.get("parent_step"),
        "edit": meta.get("edit", {}),
        "answer": fork.answer,
        "stop_reason": fork.stop_reason,
        "steps": len(fork.steps),
    }
