"""``--engine hybrid`` reuses the vectors of a dense index of the same corpus (by checksum)."""

import shutil
from pathlib import Path

import pytest

from sleuth.corpus import load_documents
from sleuth.search import build_index, index_format, open_index, read_manifest

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def cran20():
    return list(load_documents("cranfield"))[:20]


@pytest.fixture(scope="module")
def dense20(cran20, tmp_path_factory) -> Path:
    return build_index(cran20, tmp_path_factory.mktemp("dense") / "idx", engine="dense")


def _no_encoding(monkeypatch):
    def refuse(name):
        raise AssertionError("the corpus was encoded again")

    monkeypatch.setattr(index_format, "_load_encoder", refuse)


def test_hybrid_copies_the_vectors_of_a_matching_dense_index(
    cran20, dense20, tmp_path, monkeypatch
):
    _no_encoding(monkeypatch)
    path = build_index(cran20, tmp_path / "hybrid", engine="hybrid", reuse_dense=dense20)
    manifest = read_manifest(path)
    assert manifest["params"]["dense_reused_from"] == str(dense20)
    assert manifest["corpus"]["sha256"] == read_manifest(dense20)["corpus"]["sha256"]
    assert (path / "dense" / "vectors.faiss").read_bytes() == (
        dense20 / "dense" / "vectors.faiss"
    ).read_bytes()
    monkeypatch.undo()  # searching encodes the query
    hybrid, dense = open_index(path), open_index(dense20)
    query = "boundary layer heat transfer"
    assert [h.id for h in hybrid.dense.search(query, 5)] == [h.id for h in dense.search(query, 5)]
    assert len(hybrid.search(query, 5)) == 5


def test_rebuilding_a_dense_index_in_place_as_hybrid_reuses_it(
    cran20, dense20, tmp_path, monkeypatch
):
    out = tmp_path / "idx"
    shutil.copytree(dense20, out)
    _no_encoding(monkeypatch)
    build_index(cran20, out, engine="hybrid")
    assert read_manifest(out)["engine"] == "hybrid"
    assert read_manifest(out)["params"]["dense_reused_from"] == str(out.resolve())


def test_another_corpus_is_encoded_afresh_from_the_stored_documents(cran20, dense20, tmp_path):
    other = build_index(cran20[:19], tmp_path / "other", engine="hybrid", reuse_dense=dense20)
    assert "dense_reused_from" not in read_manifest(other)["params"]
    engine = open_index(other)
    assert engine.dense.search(cran20[3].title, 1)[0].id == cran20[3].id


def test_other_faiss_settings_are_not_reused(dense20):
    from sleuth.search.encoder import PACKAGED

    match = index_format._dense_settings_match
    assert match(dense20, {"dense_index": "flat", "encoder": PACKAGED})
    assert not match(dense20, {"dense_index": "sq8", "encoder": PACKAGED})
    assert not match(dense20, {"dense_index": "flat", "encoder": "other/model"})
