"""Engines on the bundled corpora: BM25 (tantivy), dense (MiniLM + faiss), hybrid (RRF)."""

import itertools
from pathlib import Path

import pytest

from sleuth.corpus import load_documents, load_qrels, load_queries
from sleuth.errors import DocumentNotFound, QueryError
from sleuth.search import SearchEngine, build_index, open_index
from sleuth.search.hybrid import reciprocal_rank_fusion
from sleuth.search.lexical import tokenize
from sleuth.types import Document


def gold_recall_at_10(engine: SearchEngine, n: int = 100) -> float:
    queries, qrels = load_queries("hotpotqa-1100"), load_qrels("hotpotqa-1100")
    ids = list(queries)[:n]
    found = total = 0
    for qid, hits in zip(ids, engine.search_batch([queries[q] for q in ids], 10), strict=True):
        gold = set(qrels[qid])
        found += len(gold & {h.id for h in hits})
        total += len(gold)
    return found / total


def test_bm25_finds_hotpotqa_gold_paragraphs(hotpot_bm25):
    assert isinstance(hotpot_bm25, SearchEngine)
    assert len(hotpot_bm25) == 10_785
    # Measured 0.84 over all 1,100 questions; the floor catches a broken ranking.
    assert gold_recall_at_10(hotpot_bm25) > 0.75


def test_bm25_hits_are_ranked_and_carry_text(hotpot_bm25):
    hits = hotpot_bm25.search("Tinted Windows band first performance", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert hits[0].title.startswith("Tinted Windows")
    assert hits[0].text == hotpot_bm25.get(hits[0].id).text


@pytest.mark.parametrize(
    "query",
    ['"unbalanced quote', "title:foo AND (bar OR", "a^2 ~ b* [x TO y]", "!!!", "ümlaut café 東京"],
)
def test_query_syntax_never_raises(hotpot_bm25, query):
    assert isinstance(hotpot_bm25.search(query, 3), list)


def test_batch_equals_single_queries(hotpot_bm25):
    queries = list(load_queries("hotpotqa-1100").values())[:20]
    batch = hotpot_bm25.search_batch(queries, 5)
    assert [[h.id for h in hits] for hits in batch] == [
        [h.id for h in hotpot_bm25.search(q, 5)] for q in queries
    ]


@pytest.mark.parametrize(
    ("query", "k"), [("", 3), ("   ", 3), ("x" * 5000, 3), ("ok", 0), ("ok", 1001)]
)
def test_invalid_queries_are_rejected_clearly(hotpot_bm25, query, k):
    with pytest.raises(QueryError):
        hotpot_bm25.search(query, k)


def test_unknown_document_id(hotpot_bm25):
    with pytest.raises(DocumentNotFound, match="no document with id 'nope'"):
        hotpot_bm25.get("nope")


def test_stemming_option_matches_word_forms(tmp_path: Path):
    docs = [Document("1", "", "Birds were flying south"), Document("2", "", "A fly landed")]
    plain = open_index(build_index(docs, tmp_path / "plain", tokenizer="plain"))
    stemmed = open_index(build_index(docs, tmp_path / "stem", tokenizer="en_stem"))
    assert [h.id for h in plain.search("flies", 5)] == []
    assert [h.id for h in plain.search("fly", 5)] == ["2"]
    # Snowball English stems flying, flies and fly alike ("fli").
    assert {h.id for h in stemmed.search("flies", 5)} == {"1", "2"}
    assert tokenize("Flying Birds!", "en_stem") == ["fli", "bird"]
    assert tokenize("Flying Birds!", "plain") == ["flying", "birds"]


def test_rrf_rewards_agreement():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], rrf_k=60)
    # 1: 1/61 + 1/62 ; 3: 1/63 + 1/61 ; 2: 1/62 ; 4: 1/63
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert sorted(fused, key=fused.get, reverse=True) == [1, 3, 2, 4]


@pytest.fixture(scope="module")
def small_hotpot():
    """The context paragraphs of 12 HotpotQA questions (~120 docs): the encoder is slow on CPU."""
    queries, qrels = load_queries("hotpotqa-1100"), load_qrels("hotpotqa-1100")
    chosen = list(queries)[:12]
    docs = list(load_documents("hotpotqa-1100"))
    gold = {doc_id for q in chosen for doc_id in qrels[q]}
    keep = gold | {d.id for d in docs[:100]}
    return [d for d in docs if d.id in keep], {q: queries[q] for q in chosen}, qrels


@pytest.fixture(scope="module")
def dense_indexes(tmp_path_factory, small_hotpot):
    docs = small_hotpot[0]
    root = tmp_path_factory.mktemp("dense")
    flat = open_index(build_index(docs, root / "flat", engine="dense"))
    compact = open_index(build_index(docs, root / "hs", engine="dense", dense_index="hnsw+sq8"))
    hybrid = open_index(build_index(docs, root / "hybrid", engine="hybrid"))
    return flat, compact, hybrid


def test_dense_retrieves_gold_paragraphs(dense_indexes, small_hotpot):
    flat, _, _ = dense_indexes
    _, queries, qrels = small_hotpot
    assert flat.manifest["params"]["dense_index"] == "flat"
    results = flat.search_batch(list(queries.values()), 5)
    found = [
        bool(set(qrels[q]) & {h.id for h in hits}) for q, hits in zip(queries, results, strict=True)
    ]
    assert sum(found) >= 9  # a gold paragraph in the top 5 for most of the 12 questions
    assert all(h.score <= 1.0001 for hits in results for h in hits)  # cosine scores


def test_compressed_dense_index_agrees_with_flat(dense_indexes, small_hotpot):
    flat, compact, _ = dense_indexes
    queries = list(small_hotpot[1].values())
    pairs = zip(flat.search_batch(queries, 10), compact.search_batch(queries, 10), strict=True)
    overlap = [len({h.id for h in a} & {h.id for h in b}) / 10 for a, b in pairs]
    assert sum(overlap) / len(overlap) > 0.9


def test_hybrid_fuses_both_rankings(dense_indexes, small_hotpot):
    flat, _, hybrid = dense_indexes
    query = next(iter(small_hotpot[1].values()))
    fused = [h.id for h in hybrid.search(query, 10)]
    dense_ids = {h.id for h in flat.search(query, 10)}
    lexical_ids = {h.id for h in hybrid.lexical.search(query, 10)}
    assert set(fused) & dense_ids and set(fused) & lexical_ids
    assert set(fused) <= {h.id for h in flat.search(query, 100)} | {
        h.id for h in hybrid.lexical.search(query, 100)
    }
    assert hybrid.get(fused[0]).id == fused[0]
