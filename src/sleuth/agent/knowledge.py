"""What the agent has already seen across turns: documents are shown in full only once."""

from __future__ import annotations

from sleuth.agent.escape import neutralise
from sleuth.agent.trajectory import HitRef
from sleuth.types import Hit


class KnowledgeCache:
    def __init__(self, doc_chars: int = 600) -> None:
        self.doc_chars = doc_chars
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
            if new:
                text = " ".join(hit.text.split())
                if len(text) > self.doc_chars:
                    text = text[: self.doc_chars].rsplit(" ", 1)[0] + " ..."
                shown = neutralise(text)
                lines.append(_block(n, hit.id, title, shown))
                self.texts.append(shown)
                self.seen[hit.id] = hit.title
                self.documents[hit.id] = (title, shown)
            else:
                lines.append(f"[{n}] already seen: (id: {neutralise(hit.id)}) {title}")
        if not hits:
            lines.append("No results. Try other search terms.")
        return "\n".join(lines), refs

    def render_documents(self, ids: list[str]) -> str:
        """Documents already shown, numbered afresh in the hits' format (for the final read)."""
        return "\n".join(
            _block(n, doc_id, *self.documents[doc_id]) for n, doc_id in enumerate(ids, start=1)
        )


def _block(n: int, doc_id: str, title: str, text: str) -> str:
    """One numbered document as the model sees it (title and text already neutralised)."""
    return f"[{n}] (id: {neutralise(doc_id)}) {title}\n{text}"
