"""Text that must fit the action grammar: words of allowed characters, capped in length and count.

Every scripted turn goes through these helpers, so a synthetic episode never contains an action
the constrained decoder could not produce (``sleuth.agent.grammar``).
"""

from __future__ import annotations

import re

from sleuth.agent.grammar import WORD_CAPS, WORD_CHARS

# The grammar's word class (printable, no whitespace, no < or >), as a Python character class.
_ALLOWED = re.compile(r"[!-;=?-~\u00a1-\uffff]")
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or as is was were are be been being which
    what who whom whose when where why how that this these those did does do than then also
    both either neither not it its his her their they he she there into about after before
    during same other more most many much one two first second name named has have had can
    could would should will""".split()  # noqa: SIM905 - a word list reads better as text
)


def clean_words(text: str) -> list[str]:
    """Whitespace-separated words made of grammar characters only (others dropped)."""
    words = []
    for raw in text.split():
        word = "".join(c for c in raw if _ALLOWED.fullmatch(c))
        if word:
            words.append(word)
    return words


def fits(text: str, max_words: int) -> bool:
    """True when ``text`` is already a valid argument: allowed words, each short, few enough."""
    words = text.split(" ")
    return 0 < len(words) <= max_words and all(
        0 < len(w) <= WORD_CHARS and all(_ALLOWED.fullmatch(c) for c in w) for w in words
    )


def argument(text: str, action: str, limit: int | None = None) -> str:
    """``text`` as an argument of ``action``: cleaned, long words dropped, word cap applied."""
    cap = WORD_CAPS[action] + 1
    words = [w for w in clean_words(text) if len(w) <= WORD_CHARS]
    return " ".join(words[: min(cap, limit or cap)])


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry meaning (no stopwords, no trailing punctuation)."""
    out = []
    for word in clean_words(text):
        core = word.strip("?!.,;:\"'()")
        if core and core.lower() not in STOPWORDS:
            out.append(core)
    return out
