"""Turn a model's output into one action, or an explanation of why it is not one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sleuth.agent.actions import ACTIONS, SPECS
from sleuth.llm.base import Completion
from sleuth.llm.toolcalls import parse_tool_calls

TAG = re.compile(rf"<({'|'.join(ACTIONS)})>", re.IGNORECASE)
THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Action:
    name: str  # search | open | judge | answer | ask | invalid
    argument: str = ""
    error: str = ""
    call_id: str = ""  # JSON format: the tool call being answered


def _invalid(reason: str, call_id: str = "") -> Action:
    return Action("invalid", error=reason, call_id=call_id)


def parse_tags(text: str, allowed: tuple[str, ...]) -> Action:
    """The first action tag outside <think>; an unclosed final tag counts (stop strings cut it)."""
    visible = THINK.sub(" ", text)
    match = TAG.search(visible)
    if match is None:
        examples = " or ".join(f"<{a}>...</{a}>" for a in allowed if a in ("search", "answer"))
        return _invalid(f"no action found; write one action such as {examples}")
    name = match.group(1).lower()
    if name not in allowed:
        return _invalid(f"the {name} action is not available here; use one of {', '.join(allowed)}")
    rest = visible[match.end() :]
    close = re.search(rf"</{name}>", rest, re.IGNORECASE)
    argument = (rest[: close.start()] if close else rest).strip()
    if not argument:
        return _invalid(f"<{name}> is empty")
    return Action(name, argument)


def parse_json(completion: Completion, allowed: tuple[str, ...]) -> Action:
    calls = completion.tool_calls or parse_tool_calls(completion.text)
    if not calls:
        return _invalid("no tool call found; call one of the tools: " + ", ".join(allowed))
    call = calls[0]
    if call.name not in allowed:
        return _invalid(f"unknown tool {call.name!r}; use one of {', '.join(allowed)}", call.id)
    if "_invalid_json" in call.arguments:
        return _invalid(f"tool arguments are not valid JSON ({call.arguments['_error']})", call.id)
    spec = SPECS[call.name]
    argument = spec.argument_from(call.arguments)
    if not argument:
        return _invalid(f"{call.name} needs a non-empty {next(iter(spec.parameters))}", call.id)
    return Action(call.name, argument, call_id=call.id)


def judge_verdict(argument: str) -> bool | None:
    """True for yes, False for no, None when the verdict is unreadable."""
    head = argument.strip().lower()
    if head.startswith(("yes", "sufficient", "enough")):
        return True
    if head.startswith(("no", "insufficient", "not enough")):
        return False
    return None
