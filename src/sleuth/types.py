"""Plain records shared by every layer: a corpus document and a search hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    """One retrievable unit (a passage or a paragraph), normalised from any corpus format."""

    id: str
    title: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def contents(self) -> str:
        """The Search-R1/FlashRAG ``contents`` string: quoted title line, then the text."""
        return f'"{self.title}"\n{self.text}' if self.title else self.text


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked result of a query: which document, how it scored, and its text."""

    id: str
    score: float
    title: str
    text: str
    rank: int = 0
    # Provenance, set by simulated engines (``sleuth.search.simulated``): which engine made the
    # hit, at which noise level, and what kind it is (real / hard_negative / random / useful /
    # noisy). Empty for real engines: the run's config names the engine.
    engine: str = ""
    noise: float | None = None
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "title": self.title,
            "text": self.text,
            "rank": self.rank,
            **(
                {"engine": self.engine, "noise": self.noise, "label": self.label}
                if self.engine
                else {}
            ),
        }
