"""A decoding constraint that backends enforce, each through its own mechanism.

In-process engines compile it (OpenVINO GenAI's structured output, llguidance for
transformers); OpenAI-compatible servers receive it in their own request fields (vLLM/SGLang
structured outputs, llama.cpp's ``json_schema``/``grammar``). A backend that cannot enforce it
says so in ``Completion.constraint`` instead of dropping it silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal


@dataclass(frozen=True)
class Constraint:
    kind: Literal["regex", "json_schema"]
    pattern: str = ""
    schema: dict[str, Any] | None = None
    gbnf: str = ""  # the same language as a GBNF grammar, for llama.cpp servers

    def __post_init__(self) -> None:
        if self.kind == "regex" and not self.pattern:
            raise ValueError("a regex constraint needs a pattern")
        if self.kind == "json_schema" and not isinstance(self.schema, dict):
            raise ValueError("a json_schema constraint needs a schema")

    @property
    def schema_json(self) -> str:
        return json.dumps(self.schema)  # key order kept: engines emit properties in this order

    def describe(self) -> str:
        return "regex" if self.kind == "regex" else "json_schema"


def check_constraint(constraint: Constraint) -> None:
    """Raise ``LLMError`` naming the problem when the grammar engine cannot parse ``constraint``.

    Why: in a continuously batched engine a grammar is compiled inside the shared decoding
    step, so one malformed regex (say, from a serve-llm client) would fail every request in
    flight. Parsed here first, with xgrammar (the engine OpenVINO GenAI uses), it fails alone.
    """
    key = constraint.pattern if constraint.kind == "regex" else constraint.schema_json
    problem = _grammar_problem(constraint.kind, key)
    if problem:
        from sleuth.errors import LLMError

        what = "regex" if constraint.kind == "regex" else "JSON schema"
        raise LLMError(f"the {what} constraint cannot be used: {problem}")


@lru_cache(maxsize=256)
def _grammar_problem(kind: str, source: str) -> str:
    try:
        import xgrammar
    except ImportError:  # nothing to check with: the engine will report it
        return ""
    try:
        if kind == "regex":
            xgrammar.Grammar.from_regex(source)
        else:
            xgrammar.Grammar.from_json_schema(source)
    except Exception as exc:  # xgrammar raises RuntimeError with a "[time] file:line: " prefix
        return str(exc).split(": ", 1)[-1].strip()[:300]
    return ""
