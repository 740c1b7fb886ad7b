"""The BM25 analyzer and query weighting on real Cranfield documents: stopwords, stemming,
repeated query terms counted as BM25 says, words cut as Lucene cuts them (format 3: numbers,
possessives, apostrophes), and format-1 and format-2 indexes opening with their old settings."""

import json
import math
import shutil
from pathlib import Path

import pytest
import tantivy

from sleuth.corpus import load_documents
from sleuth.errors import SleuthError
from sleuth.search import build_index, open_index, read_manifest
from sleuth.search.lexical import (
    LUCENE_ENGLISH_STOPWORDS,
    LexicalIndexWriter,
    document_body,
    query_terms,
    tokenize,
)
from sleuth.types import Document


@pytest.fixture(scope="module")
def cran_docs():
    return list(load_documents("cranfield"))


@pytest.fixture(scope="module")
def cran_index(cran_docs, tmp_path_factory):
    return open_index(build_index(cran_docs, tmp_path_factory.mktemp("cran") / "idx"))


def test_stopwords_are_lucenes_english_list_and_tantivys_builtin():
    assert len(LUCENE_ENGLISH_STOPWORDS) == 33
    builtin = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.stopword("english"))
        .build()
    )
    assert builtin.analyze(" ".join(LUCENE_ENGLISH_STOPWORDS)) == []
    # Only those 33: other frequent words (Snowball's longer list has them) stay.
    assert tokenize("what is the effect of these waves on them") == [
        "what",
        "effect",
        "wave",
        "them",
    ]


def test_english_analyzer_lowercases_drops_stopwords_and_stems():
    assert tokenize("The Flying Birds of the Boundary-Layers") == [
        "fli",
        "bird",
        "boundari",
        "layer",
    ]
    assert tokenize("The Flying Birds", "en_stem") == ["the", "fli", "bird"]
    assert tokenize("The Flying Birds", "plain") == ["the", "flying", "birds"]


def test_stemming_matches_word_forms_in_real_documents(cran_index, cran_docs):
    # "oscillations" in a query finds documents that only say "oscillating" / "oscillation".
    forms = {d.id for d in cran_docs if "oscillating" in document_body(d).lower()}
    hits = {h.id for h in cran_index.search("oscillations", 1000)}
    assert forms and forms <= hits


def test_a_stopword_only_query_finds_nothing(cran_index):
    assert cran_index.search("the of and in to", 10) == []


def _score(engine, query: str, doc_id: str) -> float:
    return next(h.score for h in engine.search(query, 1000) if h.id == doc_id)


def test_repeated_query_terms_add_their_weight_again(cran_index):
    """BM25 sums over query tokens: a term said twice contributes its term score twice."""
    top = cran_index.search("boundary layer", 1)[0].id
    boundary, layer = _score(cran_index, "boundary", top), _score(cran_index, "layer", top)
    once = _score(cran_index, "boundary layer", top)
    twice = _score(cran_index, "boundary boundary layer", top)
    assert once == pytest.approx(boundary + layer, rel=1e-5)
    assert twice == pytest.approx(2 * boundary + layer, rel=1e-5)
    assert query_terms(tokenize("boundary boundary layer")) == [("boundari", 2), ("layer", 1)]


def test_repetition_changes_the_ranking(cran_index):
    """Saying 'heat' three times pulls more heat documents into the top 10 (8 -> 10 measured)."""

    def heat_in_top10(query: str) -> int:
        return sum("heat" in tokenize(h.title + " " + h.text) for h in cran_index.search(query, 10))

    assert heat_in_top10("shock wave heat") < heat_in_top10("shock wave heat heat heat")


def test_bm25_score_by_hand(cran_docs, cran_index):
    """One term's score equals idf * tf*(k1+1) / (tf + k1*(1-b+b*len/avgdl)) on a real document."""
    n = len(cran_docs)
    tokens = [tokenize(document_body(d)) for d in cran_docs]
    avgdl = sum(map(len, tokens)) / n
    term = "vortex"
    df = sum(term in t for t in tokens)
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    # A document short enough that tantivy's length encoding (fieldnorm) is exact (< 40 tokens).
    row = next(i for i, t in enumerate(tokens) if term in t and len(t) < 40)
    tf, dl = tokens[row].count(term), len(tokens[row])
    expected = idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))
    assert _score(cran_index, term, cran_docs[row].id) == pytest.approx(expected, rel=1e-3)


def test_format1_index_opens_with_its_old_settings(cran_docs, tmp_path: Path):
    """An index written before format 2 (lowercase only, repeats collapsed) still searches."""
    path = build_index(cran_docs[:200], tmp_path / "old", tokenizer="plain")
    manifest = read_manifest(path)
    # What Sleuth <= format 1 wrote: the same tantivy analyzer, called "default", no query_tf.
    manifest.update(format_version=1, params={"tokenizer": "default", "k1": 1.2, "b": 0.75})
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = open_index(path)
    assert old.tokenizer == "plain" and old.query_tf is False
    top = old.search("flow", 1)[0]
    assert _score(old, "flow flow flow", top.id) == pytest.approx(top.score, rel=1e-6)
    assert old.search("the", 3)  # no stopwords in the old analyzer


def test_unknown_analyzer_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SleuthError, match="unknown analyzer 'klingon'"):
        build_index(load_documents("cranfield"), tmp_path / "x", tokenizer="klingon")


def _text_of(corpus: str, doc_id: str) -> str:
    return next(document_body(d) for d in load_documents(corpus) if d.id == doc_id)


@pytest.mark.parametrize(
    ("corpus", "doc_id", "passage", "words", "simple"),
    [
        (  # decimal numbers stay whole, as in Lucene's StandardTokenizer
            "cranfield",
            "7",
            "local mach numbers of 1.90, 2.71, and 3.67",
            ["local", "mach", "number", "1.90", "2.71", "3.67"],
            ["local", "mach", "number", "1", "90", "2", "71", "3", "67"],
        ),
        (  # a possessive 's goes (Lucene's EnglishPossessiveFilter); hyphens split, as before
            "cranfield",
            "20",
            "lees's blunt-nose modification",
            ["lee", "blunt", "nose", "modif"],
            ["lee", "s", "blunt", "nose", "modif"],
        ),
        (
            "cranfield",
            "14",
            "produced by the wing's motion",
            ["produc", "wing", "motion"],
            ["produc", "wing", "s", "motion"],
        ),
        (  # an apostrophe inside a word joins it ("can't" is one word, not "can" + "t")
            "hotpotqa-1100",
            "doc1",
            "(I Can't Make It) Another Day",
            ["i", "can't", "make", "anoth", "day"],
            ["i", "can", "t", "make", "anoth", "day"],
        ),
        (
            "hotpotqa-1100",
            "doc5",
            "(Winchester Super Short Magnum, 5.56×42mm) is a .224 caliber",
            ["winchest", "super", "short", "magnum", "5.56", "42mm", "224", "calib"],
            ["winchest", "super", "short", "magnum", "5", "56", "42mm", "224", "calib"],
        ),
    ],
)
def test_words_splitter_on_real_text(corpus, doc_id, passage, words, simple):
    """Format 3 cuts English text as Lucene does; format 2's simple splitter left fragments
    ("s", "t", "1", "90") that neither Lucene nor bm25s indexes."""
    assert passage in _text_of(corpus, doc_id)
    assert tokenize(passage) == words
    assert tokenize(passage, splitter="simple") == simple


def test_words_splitter_edge_cases():
    assert tokenize("The AIRCRAFT'S wings' ends") == ["aircraft", "wing", "end"]
    assert tokenize("the jet’s x-ray") == ["jet", "x", "ray"]  # typographic apostrophe too
    assert tokenize("3,000 ft in 1995, then 2.5-fold") == ["3,000", "ft", "1995", "2.5", "fold"]
    assert tokenize("foo_bar O'Neill") == ["foo_bar", "o'neil"]
    assert tokenize("the wing's motion", "en_stem") == ["the", "wing", "motion"]
    # plain (other languages, identifiers) keeps the simple splitter
    assert tokenize("l'avion foo_bar 2.5", "plain") == ["l", "avion", "foo", "bar", "2", "5"]


def _format2_index(docs: list[Document], path: Path, source: str = "") -> Path:
    """What Sleuth wrote up to format 2: the simple splitter, no ``splitter`` in the manifest."""
    build_index(docs, path, source=source)
    shutil.rmtree(path / "bm25")
    writer = LexicalIndexWriter(path / "bm25", "english", splitter="simple")
    for row, doc in enumerate(docs):
        writer.add(row, doc)
    writer.close()
    manifest = read_manifest(path)
    manifest["format_version"] = 2
    del manifest["params"]["splitter"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_format2_index_keeps_its_simple_splitter(tmp_path: Path):
    """A format-2 index (no ``splitter`` in its manifest) is searched with the analysis it was
    built with; a new build records ``words`` and finds the whole number."""
    docs = [
        Document("a", "Mach", "tests at local mach numbers of 1.90 and 2.71"),
        Document("b", "Wing", "the velocity produced by the wing's motion"),
        Document("c", "Other", "a flat plate in a slipstream"),
    ]
    new = open_index(build_index(docs, tmp_path / "new"))
    assert new.manifest["format_version"] == 3 and new.manifest["params"]["splitter"] == "words"
    assert [h.id for h in new.search("1.90", 3)] == ["a"]
    assert new.search("90", 3) == [] and new.search("s", 3) == []

    old = open_index(_format2_index(docs, tmp_path / "old"))
    assert old.splitter == "simple"
    assert [h.id for h in old.search("90", 3)] == ["a"]  # the fragments it indexed still match
    assert [h.id for h in old.search("1.90", 3)] == ["a"]  # and a query is cut the same way
    assert [h.id for h in old.search("wing's", 3)] == ["b"]


def test_a_cached_format2_bundled_index_is_rebuilt(cran_docs, tmp_path: Path, monkeypatch):
    """The bundled corpora's cached indexes follow the defaults: format 2 is rebuilt on use."""
    from sleuth.search.bundled import bundled_index

    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path))
    cached = _format2_index(cran_docs, tmp_path / "indexes" / "cranfield-bm25", "cranfield")
    assert read_manifest(cached)["format_version"] == 2
    path = bundled_index("cranfield")
    assert path == cached
    manifest = read_manifest(path)
    assert manifest["format_version"] == 3 and manifest["params"]["splitter"] == "words"
    assert open_index(path).splitter == "words"


@pytest.mark.parametrize(
    "stale",
    [
        ("corpus", "sha256", "0" * 64),  # the installed corpus changed since the cache was built
        ("corpus", "documents", 1),
        ("params", "stopwords", None),  # a default of the analysis changed without a new format
    ],
)
def test_a_cached_bundled_index_unlike_a_build_now_is_rebuilt(tmp_path: Path, monkeypatch, stale):
    """A bundled index cached by another version is rebuilt when its corpus or its analysis is
    not what a build now writes; a current one is reused as it is."""
    from sleuth.jsonio import write_json_atomic
    from sleuth.search.bundled import bundled_index

    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path))
    path = bundled_index("cranfield")
    built = read_manifest(path)
    assert bundled_index("cranfield") == path and read_manifest(path) == built  # reused

    section, key, value = stale
    tampered = json.loads(json.dumps(built))
    tampered[section][key] = value
    tampered["created"] = "2000-01-01T00:00:00Z"
    write_json_atomic(path / "manifest.json", tampered)
    assert bundled_index("cranfield") == path
    rebuilt = read_manifest(path)
    assert rebuilt["created"] != "2000-01-01T00:00:00Z"
    assert rebuilt["corpus"] == built["corpus"] and rebuilt["params"] == built["params"]
    assert len(open_index(path).search("boundary layer", 3)) == 3
