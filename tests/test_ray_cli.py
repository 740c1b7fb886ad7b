"""``sleuth serve --ray`` refuses what it cannot deploy with one clear line, before Ray starts.

(The deployment itself runs on a local Ray cluster in tests/test_ray_serve.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.corpus import load_documents
from sleuth.search import build_index
from tests.serve_process import sleuth


@pytest.fixture(scope="module")
def bm25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = list(load_documents("hotpotqa-1100"))[:30]
    return build_index(docs, tmp_path_factory.mktemp("ray-cli") / "bm25")


def _error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return " ".join(result.stderr.split())


def test_ray_options_need_ray_and_bm25_is_not_sharded(bm25: Path) -> None:
    assert "--shards needs --ray" in _error(sleuth("serve", str(bm25), "--shards", "2"))
    assert "--replicas needs --ray" in _error(sleuth("serve", str(bm25), "--replicas", "2"))
    refused = _error(sleuth("serve", str(bm25), "--ray", "--shards", "2", "--port", "0"))
    assert "BM25 index" in refused and "document frequency" in refused
    assert "--replicas instead" in refused and "Ray Serve" not in refused  # before Ray starts
    missing = _error(sleuth("serve", str(bm25.parent / "nope"), "--ray", "--port", "0"))
    assert "not one" in missing or "no such index folder" in missing


def test_a_missing_ray_names_the_extra(bm25: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None; sys.argv = ['sleuth', 'serve', sys.argv[1], "
        "'--ray', '--port', '0']; from sleuth.cli.main import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(bm25)], capture_output=True, text=True, timeout=120
    )
    assert "pip install 'sleuth[ray]'" in _error(result)
