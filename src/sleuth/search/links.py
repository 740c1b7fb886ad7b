"""Names in a text that are the titles of documents in the collection: the links a multi-hop
question's second document hangs on.

HotpotQA's questions were written over pairs of Wikipedia articles joined by a hyperlink, and
a bridge question's second article is named in the first (PathRetriever, Asai et al. 2020,
retrieves by following those links). A plain search engine has no link graph, so a link is
recovered the way a reader would: a capitalised or quoted name in the text is searched, and a
hit whose title *is* that name (or the longest part of it that is a title) is the linked
document. Works on any engine whose documents carry titles; where titles mean nothing, nothing
matches and nothing is followed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sleuth.types import Hit

# A run of capitalised words, allowing the small words inside names ("Battle of the Somme"),
# or a quoted title ("Bang Bang", a film); numbers count as capitalised ("2014 FIFA World
# Cup"), though a number alone is no name; a word keeps its dots inside ("U.S.") or after an
# initial ("J."), not at the end of a sentence.
_NAME_WORD = r"[A-Z0-9](?:[\w'’&-]|\.(?=\w))*(?:(?<=\b[A-Z])\.)?"
_NAME = re.compile(
    rf"\"([^\"]{{2,80}})\"|({_NAME_WORD}"
    rf"(?:\s+(?:(?:of|the|de|la|le|and|von|van|du|del|da|for|in|on|&)\s+)*{_NAME_WORD})*)"
)
_AND = re.compile(r"\s+(?:and|&)\s+")
_WORD = re.compile(r"\w+")
_PARENTHESIS = re.compile(r"\s*\([^)]*\)")
MIN_TITLE_CHARS = 4  # "The", "US", "A" name too much to be a link
LINK_LOOKUP_K = 3  # hits an exact-title search looks through for the name's title
MAX_LINK_LOOKUPS = 24  # names searched at most (a question and its best document: ~15)


def normalise(text: str) -> str:
    """Lower-case words joined by one space: how names and titles are compared."""
    return " ".join(_WORD.findall(text.lower()))


def title_key(title: str) -> str:
    """A title without its disambiguation ("Mercury (planet)" is named "Mercury")."""
    return normalise(_PARENTHESIS.sub("", title))


def names_in(text: str) -> list[str]:
    """The capitalised or quoted names in ``text``, in order, each once; a run joined by "and"
    is also split ("Harvey Pekar and Denise Levertov" names two people, "Pride and Prejudice"
    one book, so both are kept)."""
    names: list[str] = []
    for found in _NAME.finditer(text):
        name = (found.group(1) or found.group(2) or "").strip(" .,'’")
        for part in [name, *(_AND.split(name) if found.group(2) else [])]:
            part = part.strip()
            if len(part) >= MIN_TITLE_CHARS and not part.isdigit() and part not in names:
                names.append(part)
    return names


def title_named(name: str, hits: Sequence[Hit]) -> Hit | None:
    """The hit whose title is ``name``, else the one whose title is the longest run of
    ``name``'s words ("Tom Hanks" in "Oscar winner Tom Hanks"); None when no title is."""
    words = normalise(name).split()
    titled = {title_key(hit.title): hit for hit in reversed(hits) if hit.title}
    for length in range(len(words), 0, -1):
        for start in range(len(words) - length + 1):
            run = " ".join(words[start : start + length])
            if len(run) >= MIN_TITLE_CHARS and run in titled:
                return titled[run]
    return None


def linked_hits(
    names: Sequence[str], results: Sequence[Sequence[Hit]], exclude: str = ""
) -> dict[str, tuple[str, Hit]]:
    """The documents the ``names`` link to, given each name's search ``results``: document id ->
    (the first name titling it, its hit), in the names' order; ``exclude`` (the document the
    names came from) is no link to itself."""
    found: dict[str, tuple[str, Hit]] = {}
    for name, hits in zip(names, results, strict=True):
        hit = title_named(name, hits)
        if hit is not None and hit.id != exclude:
            found.setdefault(hit.id, (name, hit))
    return found
