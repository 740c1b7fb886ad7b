"""Loaders for the files people have, on real samples (tests/data/loaders/README.md):
official HotpotQA JSON, 2WikiMultihopQA, MuSiQue, HippoRAG corpora, FlashRAG JSONL, SMART."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.corpus import detect_format, load_documents, load_qrels, load_queries
from sleuth.corpus.bundled import DATA_DIR
from sleuth.errors import CorpusError
from sleuth.evaluate.benchmarks import load_benchmark, unmatched_evidence
from sleuth.search import build_index, open_index, read_manifest

SAMPLES = Path(__file__).parent / "data" / "loaders"


def test_official_hotpotqa_json_array():
    path = SAMPLES / "hotpotqa_official_sample.json"
    assert detect_format(path) == "hotpotqa"
    docs = list(load_documents(path))
    raw = json.loads(path.read_text())
    titles = list(dict.fromkeys(title for record in raw for title, _ in record["context"]))
    assert [d.id for d in docs] == titles and all(d.title == d.id for d in docs)
    nolan = next(d for d in docs if d.id == "Christopher Nolan")
    assert nolan.text.startswith("Christopher Edward Nolan ( ; born 30 July 1970)")
    bench = load_benchmark(path)
    first = bench.questions[0]
    assert first.id == "5a77ec115542992a6e59dff7" and first.answers == ("a spirit",)
    assert first.gold_evidence == (("Lilu (mythology)",), ("Alû",))
    assert first.metadata == {"type": "bridge", "level": "easy"}


def test_2wikimultihopqa_dev_record():
    path = SAMPLES / "2wiki_dev_sample.json"
    docs = {d.id: d for d in load_documents(path)}
    assert len(docs) == 10
    assert docs["Polish-Russian War (film)"].text.startswith("Polish-Russian War(Wojna")
    (question,) = load_benchmark(path).questions
    assert question.answers == ("Małgorzata Braunek",)
    # In context order; 2Wiki keys paragraphs by title, like HotpotQA.
    assert question.gold_evidence == (("Xawery Żuławski",), ("Polish-Russian War (film)",))


def test_musique_jsonl_keeps_every_paragraph_and_marks_supporting_ones_by_id():
    path = SAMPLES / "musique_sample.jsonl"
    assert detect_format(path) == "hotpotqa"  # the QA-with-contexts reader
    docs = {d.id: d for d in load_documents(path, format="musique")}
    assert len(docs) == 40  # 2 x 20 paragraphs, all distinct
    # Two different Publix paragraphs: neither is dropped, the second gets " (2)".
    assert docs["Publix"].text.startswith("Publix stands as one of the largest")
    assert docs["Publix (2)"].text.startswith("Publix Super Markets, Inc.")
    first, second = load_benchmark(path).questions
    assert first.answers == ("G. Stanley Hall", "Stanley Hall")  # answer + answer_aliases
    assert first.gold_evidence == (("Journal of Psychotherapy Integration",), ("Adolescence",))
    assert ("Publix (2)",) in second.gold_evidence
    assert all(any(a in docs for a in item) for item in second.gold_evidence)


def test_hipporag_question_array_and_corpus_agree_on_ids():
    questions = load_benchmark(SAMPLES / "hipporag_musique_sample.json").questions
    jsonl = load_benchmark(SAMPLES / "musique_sample.jsonl").questions
    assert [q.gold_evidence for q in questions] == [q.gold_evidence for q in jsonl]
    corpus_path = SAMPLES / "hipporag_musique_corpus_sample.json"
    assert detect_format(corpus_path) == "json"
    corpus = {d.id: d for d in load_documents(corpus_path)}
    assert len(corpus) == 40
    gold = [aliases[0] for q in questions for aliases in q.gold_evidence]
    assert set(gold) <= corpus.keys()
    assert corpus["Publix (2)"].text.startswith("Publix Super Markets")


def test_hipporag_v1_title_to_text_object():
    corpus = {d.id: d for d in load_documents(SAMPLES / "hipporag_hotpotqa_corpus_sample.json")}
    assert corpus["Christopher Nolan"].title == "Christopher Nolan"
    bench = load_benchmark(SAMPLES / "hotpotqa_official_sample.json")
    missing, _ = unmatched_evidence(bench.questions, lambda doc_id: doc_id in corpus)
    assert missing == 0


def test_flashrag_corpus_and_questions():
    docs = list(load_documents(SAMPLES / "flashrag_corpus_sample.jsonl"))
    assert [(d.id, d.title) for d in docs][:2] == [("3", "Ao Oni (film)"), ("4", "Pavia Cathedral")]
    assert docs[1].text.startswith("on March 17, 1989.")
    bench = load_benchmark(SAMPLES / "flashrag_nq_sample.jsonl")
    assert bench.questions[2].answers == ("Olivia", "MFSK") and not bench.has_evidence


def test_gold_evidence_by_document_id_from_qrels():
    qrels = {"test_0": {"4": 1, "5": 1}, "test_1": {"9": 0}}
    bench = load_benchmark(SAMPLES / "flashrag_nq_sample.jsonl", qrels=qrels)
    assert bench.questions[0].gold_evidence == (("4",), ("5",))
    assert bench.questions[1].gold_evidence == ()  # gain 0 is not evidence


def test_evidence_that_names_no_indexed_document_is_counted(tmp_path: Path):
    """HotpotQA questions (gold = titles) against a FlashRAG corpus (ids "3", "4"...)."""
    engine = open_index(
        build_index(load_documents(SAMPLES / "flashrag_corpus_sample.jsonl"), tmp_path / "i")
    )
    bench = load_benchmark(SAMPLES / "hotpotqa_official_sample.json")

    def has_id(doc_id: str) -> bool:
        try:
            engine.get(doc_id)
        except KeyError:
            return False
        return True

    missing, examples = unmatched_evidence(bench.questions, has_id)
    assert missing == 4 and examples[0] == "Lilu (mythology)"


def test_json_array_where_jsonl_is_expected_says_what_to_do(tmp_path: Path):
    folder = tmp_path / "beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    (folder / "queries.jsonl").write_text(json.dumps([{"_id": "q", "text": "x"}], indent=1))
    with pytest.raises(CorpusError, match=r"JSON array .* not JSONL .*jq -c"):
        load_queries(folder)


def _write_smart_variant(folder: Path, rel_layout: str) -> None:
    """Cranfield's first 100 documents and its queries under MED/CISI-style names."""
    folder.mkdir()
    cran = DATA_DIR / "cranfield"
    text = (cran / "cran.all.1400").read_text()
    cut = text.index("\n.I 101\n")
    (folder / "AERO.ALL").write_text(text[: cut + 1])
    queries = (cran / "cran.qry").read_text()
    (folder / "AERO.QRY").write_text(queries)
    qrels = load_qrels("cranfield")
    ids = [line.split()[1] for line in queries.splitlines() if line.startswith(".I")]
    lines = []
    for position, qid in enumerate(ids, start=1):  # judgements keyed by the .I ids this time
        for doc, _ in sorted(qrels.get(str(position), {}).items()):
            if int(doc) <= 100:
                row = (
                    f"{int(qid)} 0 {doc} 1"
                    if rel_layout == "trec"
                    else f"{int(qid)} {doc} 0 0.000000"
                )
                lines.append(row)
    (folder / "AERO.REL").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["trec", "cisi"])
def test_smart_collection_found_by_pattern(tmp_path: Path, layout: str):
    folder = tmp_path / "aero"
    _write_smart_variant(folder, layout)
    assert detect_format(folder) == "smart"
    docs = list(load_documents(folder, format="smart"))
    assert len(docs) == 100 and docs[0].id == "1" and docs[0].title.startswith("experimental")
    queries, qrels = load_queries(folder), load_qrels(folder)
    assert "4" in queries and "3" not in queries  # .I ids kept: the judgements use them
    assert queries["4"].startswith("what problems of heat conduction in composite slabs")
    assert all(gain == 1 for judged in qrels.values() for gain in judged.values())
    assert set(qrels) <= set(queries)


def test_cranfield_through_the_generic_smart_reader_keeps_its_quirks():
    smart_docs = list(load_documents(DATA_DIR / "cranfield", format="smart"))
    assert [(d.id, d.title, d.text) for d in smart_docs] == [
        (d.id, d.title, d.text) for d in load_documents("cranfield")
    ]
    queries = load_queries("cranfield")
    assert len(queries) == 225 and queries["3"].startswith("what problems of heat conduction")
    assert load_qrels("cranfield")["1"]["184"] == 3  # cranqrel relevance 2 -> gain 5 - 2


def test_cli_indexes_real_release_files(tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "musique"
    result = runner.invoke(app, ["index", str(SAMPLES / "musique_sample.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert read_manifest(out)["corpus"]["documents"] == 40
    hits = json.loads(
        runner.invoke(
            app, ["search", str(out), "Publix Super Markets employee-owned", "--json"]
        ).stdout
    )
    assert hits[0]["id"] == "Publix (2)"
    smart_out = tmp_path / "aero-index"
    folder = tmp_path / "aero"
    _write_smart_variant(folder, "trec")
    shutil.copy(folder / "AERO.ALL", folder / "AERO.ALL.bak")  # a stray file must not confuse it
    result = runner.invoke(
        app, ["index", str(folder), "--format", "smart", "--out", str(smart_out)]
    )
    assert result.exit_code == 0, result.output
    assert read_manifest(smart_out)["corpus"]["documents"] == 100
