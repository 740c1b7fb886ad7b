"""Read JSON tool calls out of plain model text (small local models write them inline)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sleuth.llm.base import ToolCall

# strict=False: a control character inside a string (a tab, or \x03 from a grammar engine whose
# JSON strings admit them, as xgrammar's do) must not make a whole tool call unreadable.
_DECODER = json.JSONDecoder(strict=False)
_TAGGED = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def _objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in ``text`` (decoder-driven, so braces in strings are fine)."""
    decoder, found, position = _DECODER, [], 0
    while (start := text.find("{", position)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
        position = end
    return found


def parse_tool_calls(text: str, allowed: set[str] | None = None) -> list[ToolCall]:
    """Calls written as ``<tool_call>{"name", "arguments"}</tool_call>`` or bare JSON objects."""
    tagged = [_DECODER.decode(m) for m in _TAGGED.findall(text) if _is_json(m)]
    candidates = tagged or _objects(text)
    calls = []
    for obj in candidates:
        name = obj.get("name") or obj.get("function", {}).get("name")
        arguments = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(arguments, str):
            arguments = _DECODER.decode(arguments) if _is_json(arguments) else {"input": arguments}
        if not isinstance(name, str) or not isinstance(arguments, dict):
            continue
        if allowed is not None and name not in allowed:
            continue
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=name, arguments=arguments))
    return calls


def _is_json(text: str) -> bool:
    try:
        _DECODER.decode(text)
    except (json.JSONDecodeError, TypeError):
        return False
    return True
