"""What the agent has already seen across turns: documents are shown in full only once."""

from __future__ import annotations

from sleuth.agent.escape import neutralise
from sleuth.agent.trajectory import HitRef
from sleuth.types import Hit


class KnowledgeCache:
    """``numbered_across_searches``: each document keeps one number for the whole episode (the
    first shown is [1], a later search's new ones go on from there, a document seen again shows
    its number), so an action can name documents of any search by number (``select``);
    otherwise each search numbers its hits from 1."""

    def __init__(self, doc_chars: int = 600, numbered_across_searches: bool = False) -> None:
        self.doc_chars = doc_chars
        self.numbered_across_searches = numbered_across_searches
        self.seen: dict[str, str] = {}  # id -> title, in first-seen order
        self.notes: list[str] = []  # e.g. judge rationales
        self.texts: list[str] = []  # document text as shown to the model (answer spans' source)
        # id -> (title, text) of each search hit as first shown (the final read's source)
        self.documents: dict[str, tuple[str, str]] = {}

    def render_hits(self, hits: list[Hit]) -> tuple[str, list[HitRef]]:
        """Observation text for ``hits`` (new ones in full, seen ones by reference)."""
        lines, refs = [], []
        for n, hit in enumerate(hits, start=1):
            new = hit.id not in self.seen
            refs.append(
                HitRef(
                    id=hit.id,
                    score=float(hit.score),
                    rank=hit.rank or n,
                    new=new,
                    engine=getattr(hit, "engine", ""),
                    noise=getattr(hit, "noise", None),
                    label=getattr(hit, "label", ""),
                )
            )
            title = neutralise(hit.title)
            number = n
            if self.numbered_across_searches:
                number = len(self.seen) + 1 if new else self.number_of(hit.id)
            if new:
                text = " ".join(hit.text.split())
                if len(text) > self.doc_chars:
                    text = text[: self.doc_chars].rsplit(" ", 1)[0] + " ..."
                shown = neutralise(text)
                lines.append(_block(number, hit.id, title, shown))
                self.texts.append(shown)
                self.seen[hit.id] = hit.title
                self.documents[hit.id] = (title, shown)
            else:
                lines.append(f"[{number}] already seen: (id: {neutralise(hit.id)}) {title}")
        if not hits:
            lines.append("No results. Try other search terms.")
        return "\n".join(lines), refs

    def number_of(self, doc_id: str) -> int:
        """The episode-wide number of a document seen (first-seen order, from 1)."""
        return list(self.seen).index(doc_id) + 1

    def document_numbered(self, number: int) -> str | None:
        """The id of the document seen ``number``-th (episode-wide numbering), if any."""
        ids = list(self.seen)
        return ids[number - 1] if 1 <= number <= len(ids) else None

    def render_documents(self, ids: list[str]) -> str:
        """Documents already shown, numbered afresh in the hits' format (for the final read)."""
        return "\n".join(
            _block(n, doc_id, *self.documents[doc_id]) for n, doc_id in enumerate(ids, start=1)
        )


def _block(n: int, doc_id: str, title: str, text: str) -> str:
    """One numbered document as the model sees it (title and text already neutralised)."""
    return f"[{n}] (id: {neutralise(doc_id)}) {title}\n{text}"
