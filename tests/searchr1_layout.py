"""Packaged HotpotQA passages written as a Search-R1 / FlashRAG corpus, for the import tests.

Search-R1's ``wiki-18.jsonl`` holds one ``{"id", "contents"}`` a line, ``contents`` being
``"Title"\\ntext``; its faiss rows are encoded with e5's ``passage: `` prefix, queries with
``query: ``. The packaged MiniLM stands in for e5 (the prefixes are still applied).
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "sleuth" / "data" / "hotpotqa_dev_1100_beir"
E5_LIKE = {"encoder": "packaged", "query_prefix": "query: ", "passage_prefix": "passage: "}


def write_searchr1_corpus(folder: Path, passages: int) -> tuple[Path, list[str]]:
    """The first ``passages`` packaged passages as ``folder/wiki.jsonl`` (ids "0", "1", ...),
    and its lines, in file order (row i of the index is line i)."""
    lines = []
    with (DATA / "corpus.jsonl").open(encoding="utf-8") as handle:
        for n, line in zip(range(passages), handle, strict=False):
            record = json.loads(line)
            text = f'"{record["title"]}"\n{record["text"]}'
            lines.append(json.dumps({"id": str(n), "contents": text}, ensure_ascii=False))
    corpus = folder / "wiki.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus, lines
