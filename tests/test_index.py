"""The on-disk index: manifest, atomic builds, and clear errors for anything wrong."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleuth.cli import app
from sleuth.corpus import load_documents
from sleuth.errors import CorpusError, IndexFormatError
from sleuth.search import build_index, open_index, read_manifest
from sleuth.types import Document

DOCS = [Document(str(i), f"Title {i}", f"alpha beta text number {i}") for i in range(50)]


def test_manifest_describes_the_index(tmp_path: Path):
    path = build_index(DOCS, tmp_path / "idx", source="unit")
    manifest = read_manifest(path)
    assert manifest["format_version"] == 3 and manifest["engine"] == "bm25"
    assert manifest["corpus"]["documents"] == 50 and manifest["corpus"]["source"] == "unit"
    assert manifest["params"] == {
        "tokenizer": "english",
        "splitter": "words",
        "lowercase": True,
        "stopwords": "lucene-english",
        "stemmer": "snowball-english",
        "query_tf": True,
        "k1": 1.2,
        "b": 0.75,
    }
    again = read_manifest(build_index(DOCS, tmp_path / "idx2"))
    assert again["corpus"]["sha256"] == manifest["corpus"]["sha256"]
    changed = [*DOCS[:-1], Document("49", "Title 49", "different")]
    assert (
        read_manifest(build_index(changed, tmp_path / "idx3"))["corpus"]["sha256"]
        != (manifest["corpus"]["sha256"])
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def crashing(documents, after: int):
    for n, doc in enumerate(documents):
        if n == after:
            raise RuntimeError("disk on fire")
        yield doc


def test_crash_mid_build_leaves_no_index_and_keeps_the_old_one(tmp_path: Path):
    target = tmp_path / "idx"
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_index(crashing(DOCS, 20), target)
    assert list(tmp_path.iterdir()) == []  # no half index, no temporary folder left

    build_index(DOCS[:10], target)
    with pytest.raises(RuntimeError):
        build_index(crashing(DOCS, 30), target)
    assert len(open_index(target)) == 10  # the previous index survived the failed rebuild
    build_index(DOCS, target)
    assert len(open_index(target)) == 50  # and a good rebuild replaces it


def test_duplicate_ids_abort_the_build(tmp_path: Path):
    with pytest.raises(CorpusError, match="duplicate document id"):
        build_index([*DOCS, DOCS[3]], tmp_path / "idx")
    assert not (tmp_path / "idx").exists()


def test_refuses_to_overwrite_a_folder_that_is_not_an_index(tmp_path: Path):
    precious = tmp_path / "mydata"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(IndexFormatError, match="not a Sleuth index; refusing to overwrite"):
        build_index(DOCS, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_loading_explains_what_is_wrong(tmp_path: Path):
    path = build_index(DOCS, tmp_path / "idx")
    with pytest.raises(IndexFormatError, match="no such index folder"):
        open_index(tmp_path / "missing")
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(IndexFormatError, match=r"not a Sleuth index .*half-written"):
        open_index(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="corrupt manifest"):
        open_index(broken)
    manifest = json.loads((path / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="version 99 is not supported"):
        open_index(broken)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(broken / "bm25")
    with pytest.raises(IndexFormatError, match=r"incomplete, missing bm25/meta\.json"):
        open_index(broken)
    shutil.copytree(path / "bm25", broken / "bm25")
    (broken / "manifest.json").write_text(
        json.dumps({**manifest, "corpus": {**manifest["corpus"], "documents": 51}})
    )
    with pytest.raises(IndexFormatError, match="manifest says 51 documents but the store holds 50"):
        open_index(broken)


def test_empty_corpus_is_an_error(tmp_path: Path):
    with pytest.raises(CorpusError, match="no documents"):
        build_index([], tmp_path / "idx")
    assert list(tmp_path.iterdir()) == []


def test_cli_index_and_search(tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "cran"
    result = runner.invoke(app, ["index", "cranfield", "--out", str(out), "--stem"])
    assert result.exit_code == 0, result.output
    assert read_manifest(out)["params"]["tokenizer"] == "en_stem"
    table = runner.invoke(app, ["search", str(out), "boundary layer heat transfer", "-k", "3"])
    assert table.exit_code == 0 and "boundary" in table.stdout
    raw = runner.invoke(app, ["search", str(out), "boundary layer heat transfer", "--json"])
    hits = json.loads(raw.stdout)
    assert len(hits) == 10 and hits[0]["rank"] == 1
    docs = {d.id: d for d in load_documents("cranfield")}
    assert hits[0]["text"] == docs[hits[0]["id"]].text


def test_cli_errors_are_one_clear_line(tmp_path: Path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "sleuth.cli", "search", str(tmp_path / "nope"), "q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: no such index folder"


def test_a_kill_between_the_swap_renames_is_undone_on_open(tmp_path: Path):
    """The one moment of a rebuild with no ``idx`` folder: the old one sits renamed aside."""
    target = build_index(DOCS[:10], tmp_path / "idx")
    target.rename(tmp_path / ".idx.old-deadbeef")  # as a kill after the first rename leaves it
    (tmp_path / ".idx.tmp-cafef00d").mkdir()  # and the new build's folder, its builder gone
    (tmp_path / ".idx.tmp-cafef00d" / ".builder-pid").write_text("999999999")
    assert len(open_index(tmp_path / "idx")) == 10
    build_index(DOCS, tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
