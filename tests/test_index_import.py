"""Issue 30 item 1: a Search-R1 / FlashRAG corpus and its prebuilt faiss index, imported as is.

The source is made as those projects make theirs: 240 real HotpotQA passages written one
``{"id", "contents": "\\"Title\\"\\ntext"}`` a line, encoded with ``"passage: "`` before each
(here by the packaged MiniLM, in their place e5), and indexed by faiss itself (flat, HNSW, IVF).
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import numpy as np
import pytest
from conftest import LiveServer
from searchr1_layout import DATA, E5_LIKE, write_searchr1_corpus
from serve_process import sleuth

from sleuth.errors import CorpusError, IndexFormatError, SleuthError
from sleuth.search import open_index, read_manifest
from sleuth.search.encoder import Encoder
from sleuth.search.factory import open_engine
from sleuth.search.index_import import ImportOptions, import_index

faiss = pytest.importorskip("faiss")

PASSAGES = 240
K = 10


def _options(**extra: object) -> ImportOptions:
    return ImportOptions(**{**E5_LIKE, **extra})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The corpus in Search-R1's layout, its vectors, the faiss indexes and some questions."""
    folder = tmp_path_factory.mktemp("searchr1")
    corpus, lines = write_searchr1_corpus(folder, PASSAGES)
    contents = [json.loads(line)["contents"] for line in lines]
    vectors = Encoder(None).encode([f"passage: {c}" for c in contents])
    d = vectors.shape[1]
    flat = faiss.IndexFlatIP(d)
    hnsw = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, 6, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors)
    paths = {}
    for name, index in (("flat", flat), ("hnsw", hnsw), ("ivf", ivf)):
        index.add(vectors)
        paths[name] = folder / f"e5_{name}.index"
        faiss.write_index(index, str(paths[name]))
    with (DATA / "queries.jsonl").open(encoding="utf-8") as handle:
        questions = [json.loads(line)["text"] for _, line in zip(range(40), handle, strict=False)]
    return {
        "folder": folder,
        "corpus": corpus,
        "lines": lines,
        "contents": contents,
        "vectors": vectors,
        "faiss": paths,
        "questions": questions,
    }


def _faiss_top_k(index_path: Path, questions: list[str], **settings: int) -> np.ndarray:
    """faiss's own answer: the index file searched with the prefixed query vectors."""
    index = faiss.read_index(str(index_path))
    if "ef_search" in settings:
        index.hnsw.efSearch = settings["ef_search"]
    if "nprobe" in settings:
        index.nprobe = settings["nprobe"]
    queries = Encoder(None).encode([f"query: {q}" for q in questions])
    return index.search(queries, K)[1]


def _engine_rows(engine, questions: list[str]) -> list[list[int]]:
    return [[int(h.id) for h in hits] for hits in engine.search_batch(questions, K)]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_imported_index_answers_what_faiss_answers(source: dict, tmp_path: Path, kind: str):
    out = import_index(source["corpus"], source["faiss"][kind], tmp_path / "idx", _options())
    manifest = read_manifest(out)
    engine = open_index(out)
    settings = {"ef_search": 128} if kind == "hnsw" else {}
    if kind == "ivf":
        settings["nprobe"] = manifest["params"]["nprobe"]
        assert settings["nprobe"] == 6  # the source's nprobe was 1: up to 32 lists instead
    expected = _faiss_top_k(source["faiss"][kind], source["questions"], **settings)
    assert _engine_rows(engine, source["questions"]) == expected.tolist()
    assert manifest["params"]["dense_index"] == kind
    assert manifest["params"]["mmap"] is (kind == "flat")
    imported = manifest["imported"]
    assert imported["sample_check"]["passed"] and len(imported["sample_check"]["samples"]) == 8
    assert imported["corpus"]["lines"] == manifest["corpus"]["documents"] == PASSAGES
    assert imported["faiss"]["sha256"] == _sha256(source["faiss"][kind])
    assert imported["corpus"]["sha256"] == _sha256(source["corpus"])
    # the documents come back in Search-R1's own shape, row i being line i
    hit = engine.search(source["questions"][0], 1)[0]
    assert f'"{hit.title}"\n{hit.text}' == source["contents"][int(hit.id)]
    if kind == "flat":  # linked, not copied, and memory-mapped, not read
        assert (out / "dense" / "vectors.faiss").stat().st_ino == source["faiss"][
            "flat"
        ].stat().st_ino
        assert imported["vectors"]["placed"] == "hardlink"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_query_prefix_is_applied_by_every_opener(source: dict, tmp_path: Path):
    with_prefix = import_index(
        source["corpus"], source["faiss"]["flat"], tmp_path / "a", _options()
    )
    plain = import_index(
        source["corpus"], source["faiss"]["flat"], tmp_path / "b", _options(query_prefix="")
    )
    question = source["questions"][0]
    encoder = Encoder(None)
    prefixed, bare = encoder.encode([f"query: {question}"]), encoder.encode([question])
    assert not np.allclose(prefixed, bare)
    for folder, expected in ((with_prefix, prefixed), (plain, bare)):
        engine = open_engine(folder).engine  # the factory every command opens indexes with
        np.testing.assert_allclose(engine.encode_queries([question]), expected, atol=1e-6)
    # the recorded prefix changes the ranking as faiss's own search with that vector does
    index = faiss.read_index(str(source["faiss"]["flat"]))
    engine = open_engine(with_prefix).engine
    assert [int(h.id) for h in engine.search(question, K)] == index.search(prefixed, K)[1][
        0
    ].tolist()


def test_sleuth_serve_answers_from_an_imported_index(source: dict, tmp_path: Path):
    import httpx

    from sleuth.serve.app import create_app

    folder = import_index(source["corpus"], source["faiss"]["flat"], tmp_path / "idx", _options())
    engine = open_engine(folder).engine
    questions = source["questions"][:3]
    expected = _faiss_top_k(source["faiss"]["flat"], questions)[:, :3]
    with LiveServer(create_app(engine, index_folder=folder)) as server:
        reply = httpx.post(
            f"{server.url}/retrieve", json={"queries": questions, "topk": 3, "return_scores": True}
        )
    assert reply.status_code == 200, reply.text
    for answer, rows in zip(reply.json()["result"], expected, strict=True):
        assert [item["document"]["id"] for item in answer] == [str(r) for r in rows]
        # Search-R1's agent reads ``contents``: the same text as the corpus line
        assert [item["document"]["contents"] for item in answer] == [
            source["contents"][r] for r in rows
        ]


def _recall(found: list[list[int]], reference: list[list[int]]) -> float:
    hits = sum(len(set(a) & set(b)) for a, b in zip(found, reference, strict=True))
    return hits / sum(len(b) for b in reference)


@pytest.mark.parametrize(("to", "floor"), [("sq8", 0.9), ("ivf-pq", 0.5)])
def test_conversion_keeps_recall_and_records_its_memory(
    source: dict, tmp_path: Path, to: str, floor: float
):
    flat = open_index(
        import_index(source["corpus"], source["faiss"]["flat"], tmp_path / "f", _options())
    )
    converted_path = import_index(
        source["corpus"], source["faiss"]["hnsw"], tmp_path / to, _options(to=to)
    )
    converted = open_index(converted_path)
    questions = source["questions"]
    recall = _recall(_engine_rows(converted, questions), _engine_rows(flat, questions))
    assert recall >= floor, recall
    manifest = read_manifest(converted_path)
    vectors = manifest["imported"]["vectors"]
    assert manifest["params"]["dense_index"] == vectors["dense_index"] == to
    assert vectors["converted_from"] == "hnsw" and vectors["training_rows"] == PASSAGES
    # a real reading: above the interpreter's own size, and not above this process's peak as
    # the kernel reports it now (the test process may hold models from other tests, so no fixed
    # ceiling). The kernel's high-water mark is max(recorded mark, current RSS) at each reading
    # and the recorded mark is updated lazily, so a reading taken at a transient high can exceed
    # a later one by what was freed since (CI saw 0.15 MiB); 64 MiB of slack still catches a
    # reading in the wrong unit, which would be 1024 times off.
    lifetime_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 10 << 20 < vectors["peak_rss_bytes"] <= lifetime_peak + (64 << 20)
    flat_bytes = source["faiss"]["flat"].stat().st_size
    assert vectors["bytes"] < flat_bytes / 3  # one byte a dimension (sq8) or less (ivf-pq)
    assert manifest["imported"]["sample_check"]["passed"]


def test_a_flat_source_converts_from_its_file_in_chunks(source: dict, tmp_path: Path, monkeypatch):
    """Rows are read a chunk at a time (a chunk of 64 rows here), never the whole index."""
    from sleuth.search import faiss_source

    monkeypatch.setattr(faiss_source, "CHUNK_BYTES", 64 * 4 * source["vectors"].shape[1])
    seen: list[int] = []
    original = faiss_source.FlatFileSource.read_rows

    def counting(self, fd, start, count):
        seen.append(count)
        return original(self, fd, start, count)

    monkeypatch.setattr(faiss_source.FlatFileSource, "read_rows", counting)
    out = import_index(
        source["corpus"], source["faiss"]["flat"], tmp_path / "sq8", _options(to="sq8")
    )
    assert max(seen) == 64 and sum(c for c in seen if c > 1) == PASSAGES
    index = faiss.read_index(str(out / "dense" / "vectors.faiss"))
    assert isinstance(index, faiss.IndexScalarQuantizer) and index.ntotal == PASSAGES
    first = index.reconstruct(0)
    assert np.allclose(first, source["vectors"][0], atol=0.02)  # row 0 is still line 1


def _broken(source: dict, folder: Path, lines: list[str]) -> Path:
    path = folder / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _wrong_dim_index(source: dict, folder: Path) -> Path:
    wide = faiss.IndexFlatIP(768)
    wide.add(np.random.default_rng(0).random((PASSAGES, 768), dtype=np.float32))
    path = folder / "e5_768.index"
    faiss.write_index(wide, str(path))
    return path


BAD_LINE = 37


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("fewer lines", IndexFormatError, r"has 239 lines but the faiss index holds 240 vectors"),
        ("more lines", CorpusError, r":241: the corpus has more lines than the faiss index"),
        ("broken line", CorpusError, rf"wiki\.jsonl:{BAD_LINE}: invalid JSON"),
        ("no contents", CorpusError, rf"broken\.jsonl:{BAD_LINE}: no \"contents\" string"),
        ("blank line", CorpusError, rf"broken\.jsonl:{BAD_LINE}: blank line"),
        ("wrong dimension", IndexFormatError, r"vectors of 768 dimensions, but the encoder"),
        ("rows shifted", IndexFormatError, r"sample check failed: 8 of 8 re-encoded lines"),
    ],
)
def test_a_bad_source_is_refused_by_name_and_writes_nothing(
    source: dict, tmp_path: Path, case: str, error: type, message: str
):
    lines, corpus, index = list(source["lines"]), source["corpus"], source["faiss"]["flat"]
    if case == "fewer lines":
        corpus = _broken(source, tmp_path, lines[:-1])
    elif case == "more lines":
        corpus = _broken(source, tmp_path, [*lines, lines[0].replace('"0"', '"extra"')])
    elif case == "broken line":
        lines[BAD_LINE - 1] = lines[BAD_LINE - 1][:-5]
        corpus = tmp_path / "wiki.jsonl"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif case == "no contents":
        lines[BAD_LINE - 1] = json.dumps({"id": "36", "text": "no contents key"})
        corpus = _broken(source, tmp_path, lines)
    elif case == "blank line":
        corpus = _broken(source, tmp_path, [*lines[: BAD_LINE - 1], "", *lines[BAD_LINE - 1 : -1]])
    elif case == "wrong dimension":
        index = _wrong_dim_index(source, tmp_path)
    elif case == "rows shifted":  # line i holds passage i+1: the index and corpus disagree
        corpus = _broken(source, tmp_path, [*lines[1:], lines[0]])
    out = tmp_path / "out" / "idx"
    with pytest.raises(error, match=message):
        import_index(corpus, index, out, _options())
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_no_verify_imports_a_source_the_check_refuses_and_says_so(source: dict, tmp_path: Path):
    shifted = _broken(source, tmp_path, [*source["lines"][1:], source["lines"][0]])
    out = import_index(shifted, source["faiss"]["flat"], tmp_path / "idx", _options(verify=False))
    imported = read_manifest(out)["imported"]
    assert imported["sample_check"] is None
    assert imported["warnings"] == ["sample check skipped (--no-verify)"]


def test_a_failed_import_keeps_the_index_already_there(source: dict, tmp_path: Path):
    out = import_index(source["corpus"], source["faiss"]["flat"], tmp_path / "idx", _options())
    before = (out / "manifest.json").read_text()
    short = _broken(source, tmp_path, source["lines"][:-1])
    with pytest.raises(IndexFormatError):
        import_index(short, source["faiss"]["flat"], out, _options(to="sq8"))
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jsonl", "idx"]


def test_an_encoder_that_cannot_be_loaded_needs_dim_and_is_recorded(source: dict, tmp_path: Path):
    missing = str(tmp_path / "no-such-encoder")
    with pytest.raises(SleuthError, match=r"cannot be loaded here .*give --dim 384"):
        import_index(
            source["corpus"], source["faiss"]["flat"], tmp_path / "a", _options(encoder=missing)
        )
    assert not (tmp_path / "a").exists()
    with pytest.raises(
        IndexFormatError, match=r"768 dimensions, but --dim says the encoder makes 384"
    ):
        wide = _wrong_dim_index(source, tmp_path)
        import_index(source["corpus"], wide, tmp_path / "a", _options(encoder=missing, dim=384))
    out = import_index(
        source["corpus"],
        source["faiss"]["flat"],
        tmp_path / "b",
        _options(encoder=missing, dim=384),
    )
    imported = read_manifest(out)["imported"]
    assert imported["sample_check"] is None
    assert any("could not be loaded" in w for w in imported["warnings"])
    assert any("sample check skipped" in w for w in imported["warnings"])


def test_the_command_imports_and_reports(source: dict, tmp_path: Path):
    out = tmp_path / "idx"
    corpus, flat = str(source["corpus"]), str(source["faiss"]["flat"])
    done = sleuth(
        "index", "import", "--corpus", corpus, "--faiss", flat, "--encoder", "packaged",
        "--query-prefix", "query: ", "--passage-prefix", "passage: ", "--to", "sq8",
        "--out", str(out),
        env={**os.environ, "SLEUTH_PROGRESS_SECONDS": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "converted flat -> sq8; peak memory" in done.stderr
    assert "sample check: 8 of 8 lines nearest to their own row" in done.stderr
    found = sleuth("search", str(out), source["questions"][0], "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) == 3
    bad = sleuth(
        "index", "import", "--corpus", corpus, "--faiss", str(out / "manifest.json"),
        "--encoder", "packaged", "--out", str(tmp_path / "bad"),
    )  # fmt: skip
    assert bad.returncode == 2 and "not a faiss index faiss can read" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
