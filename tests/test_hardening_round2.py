"""Issue 33 items 10, 11, 12, 15 and 17: hostile paths in banners, damaged run files, a
read-only run folder, the model a remote server serves, and unknown model names.

Real ``sleuth`` processes, a real run folder (real BM25 index, the real runner and agent loop
with a scripted policy), the real viewer on loopback, a real OpenAI-compatible HTTP server on
loopback (a stub: the remote LLM is the one external thing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from view_support import make_run

from sleuth.corpus import load_documents
from sleuth.search import build_index

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_NAME = "a[/x]b[bold red]"  # `[/x]` made rich raise MarkupError; `[bold red]` vanished


def sleuth(*args: str, cache: Path, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """``sleuth ARGS`` in a child process, offline, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sleuth.cli", *args],
        capture_output=True,
        text=True,
        env=_env(cache),
        timeout=timeout,
        cwd=cache.parent,
        **kwargs,
    )


def _env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SLEUTH_CACHE": str(cache),
        "COLUMNS": "250",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BM25 over the first 1,000 bundled HotpotQA paragraphs (built in about a second)."""
    docs = list(load_documents("hotpotqa-1100"))[:1000]
    return build_index(docs, tmp_path_factory.mktemp("round2") / "idx", source="hotpot-1000")


@pytest.fixture(scope="module")
def clean_run(small_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: 3 questions x (closed_book, rag, agent), scripted policy."""
    return make_run(small_index, tmp_path_factory.mktemp("round2-run") / "run", n=2)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---- item 10: paths and URLs in banners are shown, never parsed as markup --------------------


def test_banners_print_hostile_paths_literally(
    small_index: Path, clean_run: Path, tmp_path: Path
) -> None:
    index = tmp_path / "dir" / HOSTILE_NAME
    shutil.copytree(small_index, index)
    mcp = sleuth("mcp", str(index), cache=tmp_path / "cache", stdin=subprocess.DEVNULL)
    assert mcp.returncode == 0, mcp.stderr  # was: rich.errors.MarkupError, exit 1
    assert f"on stdio: {index} (tools: search, open)" in _one_line(mcp.stderr)

    run = tmp_path / HOSTILE_NAME / "run"
    shutil.copytree(clean_run, run)
    command = [sys.executable, "-m", "sleuth.cli", "view", str(run), "--port", "0"]
    view = subprocess.Popen(
        command, env=_env(tmp_path / "cache"), stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("open http"):
            line = view.stderr.readline()
            assert line, "".join(lines)  # the process ended before its banner
            lines.append(line)
    finally:
        view.terminate()
        view.communicate(timeout=10)
    banner = _one_line("".join(lines))
    assert f"feedback log {tmp_path / HOSTILE_NAME / 'feedback.jsonl'};" in banner
