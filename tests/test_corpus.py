"""Corpus loaders on the real bundled files, and their errors on broken input."""

import json
from pathlib import Path

import pytest

from sleuth.corpus import chunk_documents, detect_format, load_documents, load_qrels, load_queries
from sleuth.corpus.bundled import DATA_DIR
from sleuth.corpus.documents import split_contents
from sleuth.corpus.hotpotqa import hotpotqa_questions
from sleuth.errors import CorpusError
from sleuth.types import Document


def test_bundled_hotpotqa_beir_counts_and_qrels_point_at_real_documents():
    docs = {d.id: d for d in load_documents("hotpotqa-1100")}
    assert len(docs) == 10_785
    queries, qrels = load_queries("hotpotqa-1100"), load_qrels("hotpotqa-1100")
    assert len(queries) == 1_100 and len(qrels) == 1_100
    assert sum(len(v) for v in qrels.values()) == 2_200
    assert all(doc_id in docs for judged in qrels.values() for doc_id in judged)


def test_hotpotqa_records_become_title_keyed_paragraphs_matching_the_beir_corpus():
    folder = DATA_DIR / "hotpotqa_dev_1100"
    assert detect_format(folder) == "hotpotqa"
    from_records = {d.title: d.text for d in load_documents(folder)}
    from_beir = {d.title: d.text for d in load_documents("hotpotqa-1100")}
    assert from_records.keys() == from_beir.keys()
    questions = list(hotpotqa_questions([folder / "test.jsonl"]))
    assert len(questions) == 500
    assert all(set(q.supporting_titles) <= from_records.keys() for q in questions)


def test_cranfield_renumbers_queries_by_position_to_match_cranqrel():
    docs = list(load_documents("cranfield"))
    assert len(docs) == 1_400 and docs[0].id == "1"
    queries, qrels = load_queries("cranfield"), load_qrels("cranfield")
    assert len(queries) == 225
    assert sorted(queries, key=int) == [str(i) for i in range(1, 226)]
    # cran.qry's third query is numbered 004 in the file; it is query "3" for cranqrel.
    assert queries["3"].startswith("what problems of heat conduction in composite slabs")
    # Relevance 1 (most) .. 4 (least) maps to gains 4..1; -1 judgements are dropped.
    gains = {g for judged in qrels.values() for g in judged.values()}
    assert gains <= {1, 2, 3, 4} and 4 in gains


def test_jsonl_accepts_id_variants_and_searchr1_contents(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    rows = [
        {"id": "a", "title": "T", "text": "plain"},
        {"_id": 7, "text": "beir style"},
        {"id": "c", "contents": '"Quoted Title"\nbody text'},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    docs = list(load_documents(path))
    assert [d.id for d in docs] == ["a", "7", "c"]
    assert (docs[2].title, docs[2].text) == ("Quoted Title", "body text")
    assert split_contents("no title line") == ("", "no title line")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id": "a", "text": "x"}\n{"id": "b", "text": \n', r"c\.jsonl:2: invalid JSON"),
        (b'{"id": "a", "text": "x"}\n{"text": "no id"}\n', r"c\.jsonl:2: record has no id"),
        (b'{"id": "a", "title": "t"}\n', r"c\.jsonl:1: record has no text"),
        (b'{"id": "a", "text": "caf\xe9"}\n', r"c\.jsonl:1: not valid UTF-8"),
        (b"[1, 2]\n", r"c\.jsonl\[0\]: expected a JSON object"),
        (
            b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n',
            r"duplicate document id 'a' \(records 1 and 3\)",
        ),
    ],
)
def test_broken_jsonl_is_reported_with_file_and_line(tmp_path: Path, content: bytes, expected: str):
    path = tmp_path / "c.jsonl"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=expected):
        list(load_documents(path))


def test_oversized_record_is_refused_not_truncated(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "w " * 6_000_000}) + "\n")
    with pytest.raises(CorpusError, match=r"c\.jsonl:1: record is .* bytes; the limit"):
        list(load_documents(path))


def test_unknown_path_lists_the_bundled_sets():
    with pytest.raises(CorpusError, match="bundled sets: cranfield, hotpotqa-1100"):
        list(load_documents("no/such/corpus.jsonl"))


def test_chunking_keeps_every_word_with_overlap_and_parent_ids():
    text = " ".join(f"w{i}" for i in range(250))
    chunks = list(chunk_documents([Document("d", "T", text)], max_words=100, overlap=20))
    assert [c.id for c in chunks] == ["d#0", "d#1", "d#2"]
    assert all(c.fields["parent_id"] == "d" for c in chunks)
    covered = set(" ".join(c.text for c in chunks).split())
    assert covered == set(text.split())
    assert chunks[1].text.split()[:20] == chunks[0].text.split()[-20:]
