"""Untrusted text (documents, titles, ids, model output, queries) on the terminal.

Such text must never act: rich markup like ``[bold red]`` or ``[/ˈpiːkɑːr/]`` is shown as
written (or would crash rich with ``MarkupError``), and escape sequences (ANSI colours, cursor
moves, OSC window titles, bells) are removed so a document cannot drive the user's terminal.
Every place that prints such text goes through ``safe_text`` (plain string for ``Text``/table
cells) or ``safe_markup`` (a fragment spliced into a markup string).
"""

from __future__ import annotations

import re

from rich.markup import escape

# ESC-introduced sequences first (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ST``, two-byte
# ``ESC x``), then the 8-bit CSI/OSC forms, then any remaining C0/C1 control except \t and \n.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, terminated by BEL or ST (or cut short)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS / SOS / PM / APC strings
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|\x9d[^\x07\x9c]*[\x07\x9c]?"  # 8-bit OSC
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters that reorder or hide text (bidi embeddings, overrides and isolates,
# zero-width and directional marks, the BOM, line/paragraph separators, soft hyphen, word
# joiner and invisible operators): shown as their escape (``\u202e``), so a document cannot
# make the terminal display text other than what it holds.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def strip_controls(text: object) -> str:
    """``text`` as a string with terminal escape sequences and control characters removed
    (newline and tab kept; a carriage return becomes a space so it cannot overwrite a line),
    and bidi / zero-width characters made visible as ``\\uXXXX``."""
    value = str(text).replace("\r\n", "\n").replace("\r", " ")
    value = _CONTROLS.sub("", _ESCAPES.sub("", value))
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def safe_text(text: object, limit: int | None = None) -> str:
    """Printable plain text: controls stripped, cut to ``limit`` characters with an ellipsis.
    Use it for ``rich.text.Text``, table cells built from ``Text``, or ``markup=False`` prints."""
    value = strip_controls(text)
    if limit is not None and len(value) > limit:
        value = value[: max(0, limit - 1)] + "…"
    return value


def safe_markup(text: object, limit: int | None = None) -> str:
    """``safe_text`` escaped for rich markup: splice it into a markup string and it shows
    literally (``[bold]`` stays ``[bold]``)."""
    return escape(safe_text(text, limit))


def one_line(text: object, limit: int | None = None) -> str:
    """Whitespace (newlines included) collapsed to single spaces, then ``safe_text``."""
    return safe_text(" ".join(strip_controls(text).split()), limit)


def plural(count: int, noun: str) -> str:
    """``1 search``, ``2 searches``, ``0 steps``: a count and its noun, singular for 1."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"
