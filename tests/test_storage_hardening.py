"""Issue 13, storage items: indexes and the cache on read-only storage (item 3), and damaged
index data named with a way out (item 8). Real index files, real ``sleuth`` processes.

Read-only storage is made the strongest way this machine allows, and each test says which:
a read-only bind mount (root), else ``chattr +i`` (root, where the filesystem supports it),
else ``chmod a-w`` (non-root; root ignores it). Whatever the mechanism, every file's name,
size and mtime are compared before and after, so "opening never writes" is checked even where
the write itself would have been allowed.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import ServeProcess, sleuth

from sleuth.corpus import load_documents
from sleuth.errors import IndexFormatError, SleuthError
from sleuth.search import build_index, open_index
from sleuth.search.bundled import bundled_index

QUERY = "Ashland station Chicago"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def _run(*command: str) -> bool:
    return subprocess.run(command, capture_output=True).returncode == 0


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make ``folder`` read-only for the block; yields the mechanism that worked."""
    folder = folder.resolve()
    root = os.geteuid() == 0
    if root and shutil.which("mount") and _run("mount", "--bind", str(folder), str(folder)):
        if _run("mount", "-o", "remount,ro,bind", str(folder)) and not _writable(folder):
            try:
                yield "read-only bind mount"
            finally:  # lazily if files are still open (an engine not yet collected)
                _run("umount", str(folder)) or _run("umount", "-l", str(folder))
            return
        _run("umount", str(folder))
    if root and shutil.which("chattr"):
        if _run("chattr", "-R", "+i", str(folder)) and not _writable(folder):
            try:
                yield "chattr +i"
            finally:
                _run("chattr", "-R", "-i", str(folder))
            return
        _run("chattr", "-R", "-i", str(folder))
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for path in modes:
        path.chmod(modes[path] & ~0o222)
    try:
        yield "chmod a-w" if not _writable(folder) else "none (file snapshot only)"
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """A BM25 index of 300 HotpotQA paragraphs and a hybrid (BM25 + dense flat) one of 40
    (the encoder is the slow part)."""
    root = tmp_path_factory.mktemp("built")
    docs = list(itertools.islice(load_documents("hotpotqa-1100"), 1150, 1450))
    return {
        "bm25": build_index(docs, root / "bm25", engine="bm25", source="hotpotqa-1100"),
        "hybrid": build_index(docs[:40], root / "hybrid", engine="hybrid", source="hotpotqa-1100"),
    }


def _copy(source: Path, tmp_path: Path, name: str = "index") -> Path:
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def _bm25_views() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("sleuth-bm25-*")}


# -- item 3: read-only storage -----------------------------------------------------------------


@pytest.mark.parametrize("engine", ["bm25", "hybrid"])
def test_an_index_on_read_only_storage_opens_and_searches_without_writing(
    built, tmp_path, engine, record_property
):
    folder = _copy(built[engine], tmp_path)
    expected = [h.id for h in open_index(built[engine]).search(QUERY, 5)]
    gc.collect()  # that throwaway engine's view must go now, not between the two snapshots
    before, views = _snapshot(folder), _bm25_views()
    with read_only(folder) as mechanism:
        record_property("read_only_mechanism", mechanism)
        print(f"read-only storage by: {mechanism}")
        engine_ro = open_index(folder)
        hits = engine_ro.search(QUERY, 5)
        assert [h.id for h in hits] == expected and hits[0].id.startswith("doc")
        assert engine_ro.get(hits[0].id).title == hits[0].title
        if engine == "bm25":  # the CLI too (hybrid's would spend its time loading the encoder)
            done = sleuth("search", str(folder), QUERY, "--json", "-k", "3")
            assert done.returncode == 0, f"[{mechanism}] {done.stderr}"
            assert [h["id"] for h in json.loads(done.stdout)] == expected[:3]
    assert _snapshot(folder) == before, f"[{mechanism}] opening or searching changed the index"
    del engine_ro
    gc.collect()
    assert _bm25_views() == views  # the private lock folder went with the engine


def test_sleuth_serve_serves_a_read_only_index(built, tmp_path):
    folder = _copy(built["bm25"], tmp_path)
    with read_only(folder) as mechanism, ServeProcess(folder, "--quiet") as server:
        reply = httpx.post(f"{server.url}/search", json={"query": QUERY, "k": 2})
        assert reply.status_code == 200 and len(reply.json()["hits"]) == 2, mechanism


def test_a_cache_that_is_a_file_is_one_clear_error(tmp_path):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("")
    env = {**os.environ, "SLEUTH_CACHE": str(not_a_folder)}
    done = sleuth("ask", "Who founded Tinted Windows?", env=env)
    assert done.returncode == 2, done.stderr
    assert f"cannot write the cache at {not_a_folder}" in done.stderr
    assert "set SLEUTH_CACHE" in done.stderr and "Traceback" not in done.stderr


def test_ask_with_an_unusable_cache_names_trajectory_out(tmp_path):
    """Issue 33 item 19: the cache message named only SLEUTH_CACHE, though a read-only cache
    that holds the index and model works when the trajectory goes elsewhere."""
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("")
    env = {**os.environ, "SLEUTH_CACHE": str(not_a_folder)}
    done = sleuth("ask", "Who founded Tinted Windows?", env=env)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert f"cannot write the cache at {not_a_folder}" in message
    assert "set SLEUTH_CACHE to a writable folder" in message
    assert "--trajectory-out FILE" in message and "Traceback" not in message


def test_an_unwritable_cache_is_one_clear_error_and_a_filled_one_still_works(
    tmp_path, hotpot_bm25_path, monkeypatch
):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    with read_only(empty) as mechanism:
        if mechanism.startswith("none"):
            pytest.skip("this machine cannot make a folder unwritable for this user")
        env = {**os.environ, "SLEUTH_CACHE": str(empty)}
        done = sleuth("ask", "Who founded Tinted Windows?", env=env)
        assert done.returncode == 2, f"[{mechanism}] {done.stderr}"
        assert "cannot write the cache at" in done.stderr and "Traceback" not in done.stderr
    # A read-only cache that already holds the index is fine: nothing needs writing.
    filled = tmp_path / "filled-cache"
    shutil.copytree(hotpot_bm25_path, filled / "indexes" / "hotpotqa-1100-bm25")
    monkeypatch.setenv("SLEUTH_CACHE", str(filled))
    with read_only(filled) as mechanism:
        path = bundled_index("hotpotqa-1100")
        assert len(open_index(path).search("Tinted Windows", 3)) == 3, mechanism


# -- item 8: damaged index data -----------------------------------------------------------------


def _delete_a_segment_file(folder: Path) -> str:
    victim = sorted((folder / "bm25").glob("*.idx"))[0]
    victim.unlink()
    return victim.name


def _truncate(path: Path) -> str:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return path.name


DAMAGE = {
    "deleted tantivy segment": ("bm25", _delete_a_segment_file),
    "truncated docs.sqlite": ("bm25", lambda f: _truncate(f / "docs.sqlite")),
    "truncated vectors.faiss": ("hybrid", lambda f: _truncate(f / "dense" / "vectors.faiss")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_data_names_the_file_and_says_rebuild(built, tmp_path, damage):
    engine, harm = DAMAGE[damage]
    folder = _copy(built[engine], tmp_path)
    name = harm(folder)
    with pytest.raises(IndexFormatError) as raised:
        open_index(folder)
    message = str(raised.value)
    assert name in message and str(folder) in message
    assert f"rebuild it: sleuth index hotpotqa-1100 --out {folder} --engine {engine}" in message
    commands = [["search", str(folder), QUERY]]
    if engine == "bm25":  # the server opens the same way; once is enough to show it says so
        commands.append(["serve", str(folder), "--port", "0"])
    for command in commands:
        done = sleuth(*command)
        assert done.returncode == 2, (command, done.stderr)
        assert name in done.stderr and "rebuild it" in done.stderr
        assert "Traceback" not in done.stderr and "serving" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 3  # one message (the terminal may wrap)


def test_the_rebuild_hint_works_from_any_folder(tmp_path):
    """Issue 33 item 19: an index built from a relative corpus path recorded it as given, so the
    damaged-index hint named a path that only worked in the folder the build ran in."""
    build_dir, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    build_dir.mkdir(), elsewhere.mkdir()
    lines = [
        {"id": f"d{i}", "title": f"T{i}", "text": f"Ashland station text {i}"} for i in range(3)
    ]
    (build_dir / "corpus.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    built = sleuth("index", "corpus.jsonl", "--out", "idx", cwd=build_dir)
    assert built.returncode == 0, built.stderr
    folder = build_dir / "idx"
    _delete_a_segment_file(folder)
    done = sleuth("search", str(folder), QUERY, cwd=elsewhere)
    assert done.returncode == 2, done.stderr
    message = "".join(done.stderr.split())  # the terminal may wrap anywhere
    corpus = (build_dir / "corpus.jsonl").resolve()
    assert f"rebuildit:sleuthindex{corpus}--out{folder.absolute()}--enginebm25" in message
    # An index whose manifest holds a relative source (built before) says relative to what.
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["corpus"]["source"] = "corpus.jsonl"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    done = sleuth("search", "../project/idx", QUERY, cwd=elsewhere)
    assert f"--out{folder.absolute()}" in "".join(done.stderr.split())
    message = " ".join(done.stderr.split())
    assert "rebuild it: sleuth index corpus.jsonl --out" in message
    assert "corpus.jsonl is relative to the folder the index was built from" in message


def test_a_docstore_damaged_behind_an_open_engine_is_named_too(built, tmp_path):
    """Damage found only when a query reads the missing pages (e.g. a file truncated while a
    server runs) is the same clear error, not sqlite3.DatabaseError."""
    folder = _copy(built["bm25"], tmp_path)
    engine = open_index(folder)
    _truncate(folder / "docs.sqlite")
    with pytest.raises(IndexFormatError, match=r"docs\.sqlite: damaged document store"):
        for start in range(0, 300, 10):
            engine.search_batch([f"{QUERY} {n}" for n in range(start, start + 10)], 50)
            engine.get("doc1449")


@pytest.mark.parametrize(
    ("engine", "params", "message"),
    [
        ("bm25", {"k1": "abc"}, "parameter 'k1' is \"abc\"; expected a number in 0..100"),
        ("bm25", {"b": 1.5}, "parameter 'b' is 1.5; expected a number in 0..1"),
        ("bm25", {"tokenizer": "klingon"}, "parameter 'tokenizer' is \"klingon\"; expected one of"),
        ("bm25", {"k_1": 1.2}, "unknown parameter 'k_1' for a bm25 index"),
        ("bm25", {"dense_index": "flat"}, "unknown parameter 'dense_index' for a bm25 index"),
        ("hybrid", {"dim": -1}, "parameter 'dim' is -1; expected an integer in 1..65536"),
        ("hybrid", {"dense_index": "annoy"}, "parameter 'dense_index' is \"annoy\""),
        ("hybrid", {"k1": True}, "parameter 'k1' is true; expected a number"),
    ],
)
def test_hand_edited_manifest_params_are_validated(built, tmp_path, engine, params, message):
    folder = _copy(built[engine], tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["params"].update(params)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError) as raised:
        open_index(folder)
    assert message in str(raised.value) and "manifest.json" in str(raised.value)


def test_a_bad_param_is_one_line_from_the_cli(built, tmp_path):
    folder = _copy(built["bm25"], tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["params"]["k1"] = "abc"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    done = sleuth("search", str(folder), QUERY)
    assert done.returncode == 2 and "parameter 'k1'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_params_a_build_writes_pass_validation(built):
    for path in built.values():
        assert open_index(path).search(QUERY, 1)


def test_an_unusable_temporary_folder_is_named(built, monkeypatch, tmp_path):
    """The BM25 reader's private lock folder lives under TMPDIR: if that cannot be written,
    the error says so."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    with pytest.raises(SleuthError, match="set TMPDIR"):
        open_index(built["bm25"])


def test_a_lock_folder_left_by_a_killed_process_is_removed(built):
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = Path(tempfile.gettempdir()) / f"sleuth-bm25-{dead.pid}-left"
    left.mkdir()
    (left / ".tantivy-meta.lock").write_bytes(b"")
    engine = open_index(built["bm25"])
    assert not left.exists()
    mine = {p for p in _bm25_views() if p.startswith(f"sleuth-bm25-{os.getpid()}-")}
    assert mine  # this process's own view lives while its engine does
    del engine
    gc.collect()
