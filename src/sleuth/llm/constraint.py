"""A decoding constraint that backends enforce, each through its own mechanism.

In-process engines compile it (OpenVINO GenAI's structured output, llguidance for
transformers); OpenAI-compatible servers receive it in their own request fields (vLLM/SGLang
structured outputs, llama.cpp's ``json_schema``/``grammar``). A backend that cannot enforce it
says so in ``Completion.constraint`` instead of dropping it silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
