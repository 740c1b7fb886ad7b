"""Trajectories as SFT examples: the conversation the loop had, tokenized with a loss mask.

The loop's conversation is rebuilt from the trajectory (system prompt from its config, each
step's ``prompt_delta``, each model output as the loop remembered it: with the closing tag a
stop string cut re-appended). It is tokenized piece by piece like a GRPO rollout
(``sleuth.train.rollout``): the environment's text (system and user turns, the template's turn
markers, the generation prompt) with mask 0, and each model turn (its text, closing tag and
end-of-turn token) with mask 1. A sentinel in place of the model's turn finds where the chat
template puts it, so any template works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sleuth.agent import prompts
from sleuth.agent.trajectory import Step, Trajectory
from sleuth.errors import SleuthError
from sleuth.llm.base import Message
from sleuth.llm.transformers_local import render_for_template

_SENTINEL = "\u2063SLEUTH-SFT-TURN\u2063"


def remembered_output(step: Step) -> str:
    """The model's turn as the loop put it back into the conversation (``_remember_output``)."""
    text = step.model_output
    if step.action != "invalid" and f"</{step.action}>" not in text.lower():
        text += f"</{step.action}>"
    return text


def conversation(trajectory: Trajectory) -> list[Message]:
    """The messages of the episode, ending with the model's last turn."""
    config = trajectory.config
    if config.get("action_format", "tags") != "tags":
        raise SleuthError("SFT data must use the tag action format (action_format='tags')")
    actions = tuple(config.get("actions") or ())
    system = prompts.tag_system_prompt(actions, bool(config.get("prompt_example", True)))
    messages: list[Message] = [{"role": "system", "content": system}]
    for step in trajectory.steps:
        if step.fresh_context:  # the final read was a separate call, not a turn of this one
            break
        messages.extend(step.prompt_delta)
        if step.prompt_delta or step.model_output:  # a prefetch step has neither
            messages.append({"role": "assistant", "content": remembered_output(step)})
    return messages


@dataclass
class Example:
    input_ids: list[int] = field(default_factory=list)
    assistant_masks: list[int] = field(default_factory=list)

    def add(self, ids: list[int], model_made: bool) -> None:
        self.input_ids += ids
        self.assistant_masks += [int(model_made)] * len(ids)


class SFTEncoder:
    """Turns a conversation into ``input_ids`` and ``assistant_masks`` with a tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.eos = tokenizer.eos_token or ""

    def _render(self, messages: list[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            render_for_template(messages), add_generation_prompt=generation_prompt, tokenize=False
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def pieces(self, messages: list[Message]) -> list[tuple[str, bool]]:
        """``(text, model_made)`` pieces whose concatenation is the rendered conversation."""
        out: list[tuple[str, bool]] = []
        done = ""  # rendered text covered so far
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            with_sentinel = [*messages[:i], {"role": "assistant", "content": _SENTINEL}]
            rendered = self._render(with_sentinel, generation_prompt=False)
            if _SENTINEL not in rendered:
                raise SleuthError("the chat template drops the assistant's turn; cannot train")
            before, after = rendered.split(_SENTINEL, 1)
            if not before.startswith(done):
                raise SleuthError("the chat template renders earlier turns differently later")
            turn = str(message.get("content") or "")
            if self.eos and after.startswith(self.eos):
                turn += self.eos  # the model ends its turn with the end-of-turn token
            out.append((before[len(done) :], False))
            out.append((turn, True))
            done = before + turn
        full = self._render(messages, generation_prompt=False)
        if not full.startswith(done):
            raise SleuthError("the chat template renders the conversation inconsistently")
        if full[len(done) :]:
            out.append((full[len(done) :], False))
        return out

    def encode(self, messages: list[Message]) -> Example:
        example = Example()
        for text, model_made in self.pieces(messages):
            if text:
                example.add(self._encode(text), model_made)
        return example

    def encode_trajectory(self, trajectory: Trajectory) -> Example:
        return self.encode(conversation(trajectory))


def model_spans(example: Example, tokenizer: Any) -> list[str]:
    """The decoded mask-1 runs of ``example`` (what the loss is computed on), in order."""
    spans, run = [], []
    for token, bit in zip(example.input_ids, example.assistant_masks, strict=True):
        if bit:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    if run:
        spans.append(tokenizer.decode(run))
    return spans
