"""The grammar of one model turn: exactly one well-formed action of the enabled set.

Tags format: an optional ``<think>...</think>``, then exactly one action tag with its argument,
then nothing. Lengths are capped in words of at most ``WORD_CHARS`` characters, so every turn
is finite and random logits under the grammar still end in a complete action (the property
test). Caps are in words rather than one long character range because OpenVINO GenAI's
grammar engine precomputes masks per regex state: ``[^<>]{1,150}`` took about 20 s to compile
here, the word form a few seconds (once per grammar and process). JSON format: one
``{"name", "arguments"}`` object whose arguments match that tool's schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sleuth.agent.actions import ACTION_SPECS, SPECS
from sleuth.llm.constraint import Constraint

THINK_WORDS = 19
# Words allowed after the first one, per action argument (so N + 1 words at most); each
# action's cap is its entry's ``words`` in sleuth.agent.actions.
WORD_CAPS: dict[str, int] = {"think": THINK_WORDS, **{s.name: s.words for s in ACTION_SPECS}}
CHAR_CAPS: dict[str, int] = {s.name: s.chars for s in ACTION_SPECS}  # JSON: maxLength per argument
WORD_CHARS = 24  # characters per word: with the word caps, every turn has a bounded length
# Printable characters but < and > (which would open a tag) and whitespace, spelled as positive
# ranges: a negated class is clamped to ASCII by the xgrammar inside OpenVINO GenAI (no "ü").
WORD_CLASS = r"[!-;=?-~\u00a1-\uffff]"
_WORD = rf"{WORD_CLASS}{{1,{WORD_CHARS}}}"


def _regex_literal(text: str) -> str:
    """``text`` matched literally; only regex metacharacters are escaped (``re.escape`` also
    escapes spaces, which not every engine's regex dialect accepts)."""
    return "".join("\\" + ch if ch in r"\.^$|?*+()[]{}-/" else ch for ch in text)


def _words(extra: int) -> str:
    return rf"{_WORD}( {_WORD}){{0,{extra}}}"


@dataclass(frozen=True)
class ActionGrammar:
    """Which actions a turn may take and whether a thought may precede the action."""

    actions: tuple[str, ...]
    think: bool = True
    word_caps: dict[str, int] = field(default_factory=lambda: dict(WORD_CAPS))
    # When set, the answer must be exactly one of these strings (``AgentConfig.answer_spans``:
    # spans of the documents the agent saw) instead of free words.
    answer_choices: tuple[str, ...] = ()

    def _choices(self) -> tuple[str, ...]:
        """The usable choices: none with tag characters, quotes, backslashes or line breaks."""
        return tuple(c for c in self.answer_choices if c and not set(c) & set('<>\n\r\t"\\'))

    def tag_regex(self) -> str:
        alternatives = []
        for action in self.actions:
            spec = SPECS[action]
            body = _words(self.word_caps[action])
            if spec.heads:
                body = "(" + "|".join(spec.heads) + rf"): {body}"
            if spec.spans and self._choices():
                body = "(" + "|".join(_regex_literal(c) for c in self._choices()) + ")"
            alternatives.append(rf"<{action}>{body}</{action}>")
        action_part = "(" + "|".join(alternatives) + ")"
        if not self.think:
            return action_part
        return rf"(<think>{_words(self.word_caps['think'])}</think>\n)?{action_part}"

    def tag_gbnf(self) -> str:
        """The tag grammar in llama.cpp's GBNF (same language as ``tag_regex``)."""

        def words(extra: int) -> str:
            return f'word (" " word){{0,{extra}}}'

        rules = [f"word ::= [^<> \\t\\n\\r]{{1,{WORD_CHARS}}}"]
        alternatives = []
        for action in self.actions:
            spec = SPECS[action]
            body = words(self.word_caps[action])
            if spec.heads:
                body = "(" + " | ".join(json.dumps(h) for h in spec.heads) + f') ": " {body}'
            if spec.spans and self._choices():
                body = "(" + " | ".join(json.dumps(c) for c in self._choices()) + ")"
            rules.append(f'{action} ::= "<{action}>" {body} "</{action}>"')
            alternatives.append(action)
        choice = "(" + " | ".join(alternatives) + ")"
        root = "root ::= " + ("think? " if self.think else "") + choice
        if self.think:
            rules.append(f'think ::= "<think>" {words(self.word_caps["think"])} "</think>\\n"')
        return "\n".join([root, *rules]) + "\n"

    def json_schema(self) -> dict[str, Any]:
        variants = []
        for action in self.actions:
            spec = SPECS[action]
            params = spec.parameters
            properties: dict[str, Any] = {}
            for name in params:
                if spec.heads and name == next(iter(params)):
                    properties[name] = {"type": "string", "enum": list(spec.heads)}
                elif spec.spans and self._choices():
                    properties[name] = {"type": "string", "enum": list(self._choices())}
                else:
                    properties[name] = {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": CHAR_CAPS[action],
                    }
            variants.append(
                {
                    "type": "object",
                    "properties": {
                        "name": {"const": action},
                        "arguments": {
                            "type": "object",
                            "properties": properties,
                            "required": list(params),
                            "additionalProperties": False,
                        },
                    },
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
            )
        return variants[0] if len(variants) == 1 else {"anyOf": variants}

    def constraint(self, action_format: str) -> Constraint:
        if action_format == "json":
            return Constraint(kind="json_schema", schema=self.json_schema())
        return Constraint(kind="regex", pattern=self.tag_regex(), gbnf=self.tag_gbnf())
