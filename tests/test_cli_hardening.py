"""Issue 13 items 1, 2, 9 and 12: the CLI as a new user and a hostile document see it.

Every test runs the real ``sleuth`` command in a child process on real files (a corpus with
hostile text indexed by ``sleuth index``; an OpenAI-compatible server on loopback replaying
scripted model output)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import LiveServer

from sleuth.llm.scripted import ScriptedLLM
from sleuth.llm.serve_llm import create_llm_app
from sleuth.search import open_index

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = [
    {
        "id": "pekar/1",
        "title": "[bold red]Harvey Pekar[/bold red]",
        "text": "Pekar is pronounced [/ˈpiːkɑːr/] \x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \x9b2J end",
    },
    {"id": "plain", "title": "Denise Levertov", "text": "A British-born American poet."},
]


def sleuth(*args: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``sleuth ARGS`` in a child process, output captured (stdout is not a terminal)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SLEUTH_CACHE": str(cache),
        "COLUMNS": "250",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "sleuth.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cache.parent,
    )


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in HOSTILE), encoding="utf-8")
    result = sleuth("index", str(corpus), "--out", str(folder / "idx"), cache=folder / "cache")
    assert result.returncode == 0, result.stderr
    return folder / "idx"


def assert_no_terminal_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text)


# ---- item 1: untrusted text is printed literally, escape sequences stripped ------------------


def test_search_prints_hostile_documents_literally(hostile_index: Path, tmp_path: Path) -> None:
    result = sleuth("search", str(hostile_index), "pronounced", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr  # was: rich.errors.MarkupError
    assert "[/ˈpiːkɑːr/]" in result.stdout
    assert "[bold red]Harvey Pekar[/bold red]" in result.stdout  # shown, not applied
    assert "RED" in result.stdout and "pwned" not in result.stdout
    assert_no_terminal_controls(result.stdout + result.stderr)
    # A query with markup and escapes is printed literally too.
    nasty = sleuth("search", str(hostile_index), "[bold]x\x1b[2J", cache=tmp_path / "cache")
    assert nasty.returncode == 0, nasty.stderr
    assert_no_terminal_controls(nasty.stdout)


def _llm_server(outputs: list[str]) -> LiveServer:
    return LiveServer(create_llm_app(ScriptedLLM(outputs)))


def test_ask_shows_hostile_model_output_and_hits_literally_and_saves_the_trajectory(
    hostile_index: Path, tmp_path: Path
) -> None:
    outputs = [
        "Let me look [/ˈpiːkɑːr/] up.\x1b]0;pwned\x07 <search>pronounced</search>",
        "<search>zzzzqqq</search>",
        "\x1b[2J[bold]garbage without an action",
        "<answer>[red]Harvey Pekar\x1b[31m</answer>",
    ]
    with _llm_server(outputs) as server:
        result = sleuth(
            "ask",
            "How is Pekar pronounced?",
            "--index",
            str(hostile_index),
            "--llm-url",
            f"{server.url}/v1",
            cache=tmp_path / "cache",
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert_no_terminal_controls(out + result.stderr)
    # Each search: the query, then its hits with rank, title, id and score.
    assert "search pronounced" in out
    assert "1. [bold red]Harvey Pekar[/bold red] id pekar/1 score" in out
    assert "no hits" in out  # the second search found nothing
    # What the model wrote, every step, literally; the invalid step shows its output too.
    assert "model wrote: Let me look [/ˈpiːkɑːr/] up." in out
    assert "model wrote: [bold]garbage without an action" in out
    assert "answer: [red]Harvey Pekar" in out
    # The trajectory went to the cache (not ./runs) and the output says where.
    saved = list((tmp_path / "cache" / "runs" / "ask").glob("*.jsonl"))
    assert len(saved) == 1 and str(saved[0]) in out.replace("\n", "")
    trajectory = json.loads(saved[0].read_text(encoding="utf-8"))
    assert trajectory["answer"] == "[red]Harvey Pekar\x1b[31m"  # stored as the model wrote it
    assert not (tmp_path / "runs").exists()


def test_ask_prefetch_searches_the_question_before_the_model_speaks(
    hostile_index: Path, tmp_path: Path
) -> None:
    """``--prefetch 2`` (eval's agent_rag): step 0 is the loop's search of the whole question,
    shown with its hits; the model's first prompt carries them; its own search comes next."""
    script = ScriptedLLM(["<search>Levertov</search>", "<answer>Denise Levertov</answer>"])
    with LiveServer(create_llm_app(script)) as server:
        result = sleuth(
            "ask", "Who was a British-born poet?", "--index", str(hostile_index),
            "--llm-url", f"{server.url}/v1", "--prefetch", "2", cache=tmp_path / "cache",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "step 0 search Who was a British-born poet?" in out
    assert out.index("step 0 search Who") < out.index("search Levertov") < out.index("answer:")
    assert "2 searches" in out
    first_prompt = script.calls[0][-1]["content"]
    assert first_prompt.startswith("<information>") and "Denise Levertov" in first_prompt
    saved = next((tmp_path / "cache" / "runs" / "ask").glob("*.jsonl"))
    steps = json.loads(saved.read_text(encoding="utf-8"))["steps"]
    assert steps[0]["action"] == "search" and steps[0]["model_output"] == ""
    assert steps[1]["argument"] == "Levertov"


def test_ask_runs_a_model_as_it_was_trained_unless_a_flag_says_otherwise(
    hostile_index: Path, tmp_path: Path
) -> None:
    """A model folder whose training record names its settings (as ``sleuth train sft``
    writes it) gets them by default: prefetch, hit length, no worked example; flags win."""
    model = tmp_path / "my-primed"
    model.mkdir()
    inference = {"prompt_example": False, "prefetch_k": 2, "doc_chars": 20}
    (model / "sleuth_training.json").write_text(json.dumps({"inference": inference}))

    def ask(*flags: str) -> tuple[subprocess.CompletedProcess, ScriptedLLM, dict]:
        outputs = ["<search>Levertov</search>", "<answer>Denise Levertov</answer>"]
        script = ScriptedLLM(outputs, name=str(model))
        out = tmp_path / f"t{len(flags)}.jsonl"
        with LiveServer(create_llm_app(script)) as server:
            result = sleuth(
                "ask", "Who was a British-born poet?", "--index", str(hostile_index),
                "--llm-url", f"{server.url}/v1", "--model", str(model),
                "--trajectory-out", str(out), *flags, cache=tmp_path / "cache",
            )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result, script, json.loads(out.read_text(encoding="utf-8"))

    result, script, record = ask()
    assert "runs as it was trained: no worked example, the question searched first (top 2)" in (
        result.stdout.replace("\n", " ")
    )
    assert record["config"]["prefetch_k"] == 2 and record["config"]["doc_chars"] == 20
    assert record["steps"][0]["argument"] == "Who was a British-born poet?"  # prefetched
    assert "Velloran" not in script.calls[0][0]["content"]  # no worked example
    assert "A British-born American poet." not in script.calls[0][-1]["content"]  # 20 chars

    _, script, record = ask("--prefetch", "0", "--doc-chars", "600", "--prompt-example")
    assert record["config"]["prefetch_k"] == 0 and record["config"]["doc_chars"] == 600
    assert record["config"]["prompt_example"] is True
    assert "Velloran" in script.calls[0][0]["content"]
    assert not script.calls[0][-1]["content"].startswith("<information>")


class StallingLLM(ScriptedLLM):
    """Answers the first call with a search, then stalls (as a slow model would)."""

    def __init__(self) -> None:
        super().__init__(["<search>pronounced</search>"])
        self.stalled = threading.Event()

    async def complete(self, messages, config=None, tools=None):
        if self.calls:
            self.stalled.set()
            await asyncio.sleep(3)
        return await super().complete(messages, config, tools)


def test_ctrl_c_in_ask_keeps_the_steps_done(hostile_index: Path, tmp_path: Path) -> None:
    llm = StallingLLM()
    out = tmp_path / "t.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SLEUTH_CACHE": str(tmp_path / "c")}
    with LiveServer(create_llm_app(llm)) as server:
        child = subprocess.Popen(
            [sys.executable, "-m", "sleuth.cli", "ask", "How?", "--index", str(hostile_index),
             "--llm-url", f"{server.url}/v1", "--trajectory-out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            # A shell's background job ignores SIGINT and children inherit that; Python then
            # installs no KeyboardInterrupt handler. The child gets the default, as in a terminal.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        assert llm.stalled.wait(60), child.communicate()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert "interrupted after 1 steps" in stdout
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["stop_reason"] == "interrupted"
    assert [step["argument"] for step in record["steps"]] == ["pronounced"]


# ---- item 2: a failing model is reported, with its message, and the exit code says so ------


def test_ask_reports_the_llm_error_and_exits_non_zero(hostile_index: Path, tmp_path: Path) -> None:
    with _llm_server(["<answer>never used</answer>"]) as server:
        result = sleuth(
            "ask",
            "Who?",
            "--index",
            str(hostile_index),
            "--llm-url",
            server.url,  # missing /v1: every call is a 404
            "--trajectory-out",
            str(tmp_path / "t.jsonl"),
            cache=tmp_path / "cache",
        )
    assert result.returncode != 0
    assert "stop: llm_error" in result.stdout
    assert "error: the model failed" in result.stderr
    assert "ending in /v1" in result.stderr  # the helpful hint reaches the user
    # The trajectory was written all the same, with the error in it.
    record = json.loads((tmp_path / "t.jsonl").read_text(encoding="utf-8"))
    assert record["stop_reason"] == "llm_error" and "/v1" in record["metadata"]["error"]


# ---- item 9: output paths and arguments are checked before any work ------------------------


def assert_one_line_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("make_out", "extra", "phrases"),
    [
        ("folder", [], ["is not a Sleuth index; refusing to overwrite"]),
        ("file", [], ["is a file; give a folder"]),
        ("root", [], ["filesystem root"]),
        ("under_file", [], ["is a file, not a folder"]),
        ("new", ["--engine", "bm26"], ["unknown engine 'bm26'", "bm25, dense, hybrid"]),
        ("new", ["--engine", "dense", "--dense-index", "ivf"], ["unknown dense index 'ivf'"]),
        ("new", ["--dense-index", "hnsw"], ["applies to the dense and hybrid engines"]),
    ],
)
def test_index_refuses_bad_output_and_options_before_building(
    tmp_path: Path, make_out: str, extra: list[str], phrases: list[str]
) -> None:
    out = {
        "folder": tmp_path / "mydata",
        "file": tmp_path / "notes.txt",
        "root": Path("/"),
        "under_file": tmp_path / "notes.txt" / "idx",
        "new": tmp_path / "idx",
    }[make_out]
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "thesis.tex").write_text("years of work")
    (tmp_path / "notes.txt").write_text("notes")
    # The bundled HotpotQA corpus: 10,785 paragraphs, so a late refusal would show a progress bar.
    result = sleuth("index", "hotpotqa-1100", "--out", str(out), *extra, cache=tmp_path / "c")
    assert_one_line_error(result, *phrases)
    assert "indexing" not in result.stderr  # refused before the build started
    assert (tmp_path / "mydata" / "thesis.tex").read_text() == "years of work"
    assert (tmp_path / "notes.txt").read_text() == "notes"


def test_ask_refuses_both_index_and_search_url(hostile_index: Path, tmp_path: Path) -> None:
    result = sleuth(
        "ask",
        "Who?",
        "--index",
        str(hostile_index),
        "--search-url",
        "http://127.0.0.1:9",
        cache=tmp_path / "cache",
    )
    assert_one_line_error(result, "either --index", "or --search-url", "not both")


def test_eval_run_checks_its_arguments_before_loading_the_model(tmp_path: Path) -> None:
    # A model that cannot load: had the model been loaded first, its error would show instead.
    missing_model = str(tmp_path / "no-such-model")
    result = sleuth(
        "eval", "run", "--out", str(tmp_path / "run"), "--methods", "rag,agent", "-n", "2",
        "--model", missing_model, cache=tmp_path / "cache",
    )  # fmt: skip
    assert_one_line_error(result, "methods rag, agent need a search engine")
    assert not (tmp_path / "run").exists()


def test_eval_run_into_a_folder_with_other_settings_names_each_difference_and_compare_shows_them(
    tmp_path: Path,
) -> None:
    def run(out: str, *extra: str) -> subprocess.CompletedProcess:
        return sleuth(
            "eval", "run", "--out", str(tmp_path / out), "--methods", "closed_book", "-n", "2",
            "--llm-url", f"{server.url}/v1", "--model", "scripted", "--no-report", *extra,
            cache=tmp_path / "cache",
        )  # fmt: skip

    with _llm_server(["<answer>Paris</answer>"] * 8) as server:
        first = run("a")
        assert first.returncode == 0, first.stderr
        # item 11: the summary table has the short cover-EM, answer length and no-answer columns
        assert "cover≤5w" in first.stdout and "no ans." in first.stdout
        # item 12: stderr is a pipe, so progress is plain lines, not an invisible live bar
        assert "evaluating: done 2/2 (100%)" in first.stderr and "━" not in first.stderr
        assert "they score 0 but are not wrong answers" in " ".join(first.stdout.split())
        again = run("a", "--top-k", "5", "--max-turns", "3")
        assert_one_line_error(
            again,
            "different settings",
            "budget.top_k: 3 in the folder, 5 now",
            "budget.max_turns: 8 in the folder, 3 now",
        )
        other = run("b", "--top-k", "5")
        assert other.returncode == 0, other.stderr
    # item 12: `eval compare` explains its p column and says how the two runs differ.
    compared = sleuth("eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), cache=tmp_path)
    assert compared.returncode == 0, compared.stderr
    text = " ".join(compared.stdout.split())
    assert "p: two-sided bootstrap p-value" in text
    assert "settings that differ: budget.top_k: 3 in A, 5 in B" in text


def test_eval_run_uses_the_settings_a_model_was_trained_with(tmp_path: Path) -> None:
    """`eval run --model FOLDER` with a training record: its hit length and prompt unless a
    flag is given; the resolved values are what the run folder records."""
    model = tmp_path / "primed"
    model.mkdir()
    inference = {"prompt_example": False, "prefetch_k": 3, "doc_chars": 250}
    (model / "sleuth_training.json").write_text(json.dumps({"inference": inference}))
    script = ScriptedLLM(["<answer>Paris</answer>"] * 4, name=str(model))
    with LiveServer(create_llm_app(script)) as server:

        def run(out: str, *extra: str) -> dict:
            result = sleuth(
                "eval", "run", "--out", str(tmp_path / out), "--methods", "closed_book",
                "-n", "1", "--llm-url", f"{server.url}/v1", "--model", str(model),
                "--no-report", *extra, cache=tmp_path / "cache",
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert "agent_rag method" in " ".join(result.stderr.split())
            return json.loads((tmp_path / out / "config.json").read_text())["budget"]

        budget = run("a")
        assert budget["doc_chars"] == 250 and budget["prompt_example"] is False
        budget = run("b", "--doc-chars", "600", "--prompt-example")
        assert budget["doc_chars"] == 600 and budget["prompt_example"] is True


# ---- item 12: polish ------------------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    from sleuth import __version__

    result = sleuth("--version", cache=tmp_path / "cache")
    assert result.returncode == 0 and result.stdout.strip() == f"sleuth {__version__}"


def test_gzip_and_bom_corpora_and_one_document_wording(tmp_path: Path) -> None:
    import gzip

    record = json.dumps({"id": "d1", "title": "Pekar", "text": "Harvey Pekar, comics writer"})
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + record.encode() + b"\n")
    packed = tmp_path / "corpus.jsonl.gz"
    packed.write_bytes(gzip.compress((record + "\n").encode()))
    for corpus in (bom, packed):
        out = tmp_path / f"idx-{corpus.name}"
        result = sleuth("index", str(corpus), "--out", str(out), cache=tmp_path / "c")
        assert result.returncode == 0, result.stderr
        assert "indexed 1 document into" in result.stderr  # not "1 documents"
        assert open_index(out).get("d1").title == "Pekar"  # BOM not glued to the first key
    broken = tmp_path / "cut.jsonl.gz"
    broken.write_bytes(packed.read_bytes()[:-12])
    cut = sleuth("index", str(broken), "--out", str(tmp_path / "x"), cache=tmp_path / "c")
    assert_one_line_error(cut, "damaged gzip file")


def test_no_hit_search_says_no_hits(hostile_index: Path, tmp_path: Path) -> None:
    result = sleuth("search", str(hostile_index), "zzzzqqq", cache=tmp_path / "cache")
    assert result.returncode == 0 and "no hits for 'zzzzqqq'" in result.stdout


def test_progress_writes_plain_lines_to_a_log(tmp_path: Path) -> None:
    corpus = tmp_path / "small.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "title": f"T{i}", "text": f"text number {i}"}) + "\n"
            for i in range(350)
        )
    )
    os.environ["SLEUTH_PROGRESS_SECONDS"] = "0"  # a line at every update (default: every 30 s)
    try:
        result = sleuth("index", str(corpus), "--out", str(tmp_path / "idx"), cache=tmp_path / "c")
    finally:
        del os.environ["SLEUTH_PROGRESS_SECONDS"]
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("indexing (bm25)")]
    # A 350-document corpus moves the bar (it used to move per 1,000 documents): started,
    # 100, 200, 300, 350, done.
    assert lines[0].startswith("indexing (bm25): started 0")
    assert [line.split()[2].rstrip(",") for line in lines[1:-1]] == ["100", "200", "300", "350"]
    assert lines[-1].startswith("indexing (bm25): done 350/350 (100%)")
    assert "━" not in result.stderr and "\r" not in result.stderr  # no bar redraws in a log


@pytest.mark.slow  # ~35 s on 2 busy cores: torch, the encoder and the packaged model load
def test_models_load_without_progress_bars(tmp_path: Path) -> None:
    code = (
        "from sleuth.search.encoder import Encoder; Encoder(None)\n"
        "from sleuth.llm import load_llm; print(load_llm(None).name)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # the shared model cache
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr and "%|" not in result.stderr


def test_docs_have_no_placeholders() -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "PLACEHOLDER" not in page.read_text(encoding="utf-8"), page


def test_help_reflows_docstrings_into_paragraphs(tmp_path: Path) -> None:
    """The help renderer wraps to the terminal; source line breaks must not leave ragged
    half-empty lines in `--help` (typer keeps them), while list items keep their own lines."""
    from sleuth.cli import reflow

    assert reflow(
        "First line\n    goes on.\n\n    A paragraph\n    wrapped.\n    - item one\n    - item two"
    ) == ("First line goes on.\n\nA paragraph wrapped.\n- item one\n- item two")
    shown = sleuth("train", "selfplay", "--help", cache=tmp_path).stdout
    assert "proposed G times: the policy explores from the seed (search/open)" in " ".join(
        shown.split()
    )
    # No line of the description ends far short of the width because of a source break.
    description = shown.split("Options")[0].splitlines()
    assert not any(line.rstrip().endswith("the seed") for line in description)


def test_rebuilding_an_index_keeps_files_sleuth_did_not_write(tmp_path: Path) -> None:
    """A rebuild replaces the whole index folder: a note the user put there is refused, not
    deleted (audit 2, item 2)."""
    from sleuth.search import build_index
    from sleuth.types import Document

    index = tmp_path / "idx"
    build_index([Document(f"d{i}", "", f"text {i}") for i in range(3)], index)
    (index / "NOTES.md").write_text("why this index exists")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "text": "alpha"}\n')
    result = sleuth("index", str(corpus), "--out", str(index), cache=tmp_path / "c")
    assert_one_line_error(result, "files Sleuth did not write", "NOTES.md", "move them out")
    assert (index / "NOTES.md").read_text() == "why this index exists"
    (index / "NOTES.md").unlink()  # with only Sleuth's files it rebuilds as before
    assert sleuth("index", str(corpus), "--out", str(index), cache=tmp_path / "c").returncode == 0


@pytest.mark.parametrize("kind", ["root", "user_folder", "index", "foreign_config"])
def test_eval_run_writes_only_into_a_run_folder(tmp_path: Path, kind: str) -> None:
    """`eval run --out` is refused for the filesystem root, a folder of the user's own files,
    an index and a folder whose config.json is someone else's, before anything is written
    (audit 2, item 1)."""
    from sleuth.search import build_index
    from sleuth.types import Document

    folder = tmp_path / "target"
    if kind == "user_folder":
        folder.mkdir()
        (folder / "report.html").write_text("my own report")
    elif kind == "index":
        build_index([Document("d1", "", "text")], folder)
    elif kind == "foreign_config":
        folder.mkdir()
        (folder / "config.json").write_text('{"name": "my webpack settings"}')
    out = Path("/") if kind == "root" else folder
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = sleuth(
        "eval", "run", "--out", str(out), "--methods", "closed_book", "-n", "1",
        cache=tmp_path / "cache",
    )  # fmt: skip
    phrases = {
        "root": ["filesystem root"],
        "user_folder": ["not a Sleuth run", "report.html"],
        "index": ["holds a Sleuth index"],
        "foreign_config": ["config.json is not a Sleuth run's"],
    }[kind]
    assert_one_line_error(result, *phrases)
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not (Path("/") / "results.jsonl").exists()


# ---- audit 2 (issue 33) ---------------------------------------------------------------------


def test_eval_run_whose_every_episode_failed_says_why_and_exits_non_zero(tmp_path: Path) -> None:
    """item 16: no table of zeros with exit 0; the first error on stderr, exit 2."""
    result = sleuth(
        "eval", "run", "--out", str(tmp_path / "run"), "--methods", "closed_book", "-n", "2",
        "--llm-url", "http://127.0.0.1:9/v1", "--model", "nobody", "--no-report",
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert_one_line_error(result, "all 2 episodes of this run failed", "cannot reach the LLM at")
    assert len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 2  # kept


def test_a_second_eval_run_on_the_same_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """item 3: one run per folder (two used to run every episode twice); the lock of a killed
    run is taken over."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    hold = (
        "import sys, time; from pathlib import Path; from sleuth.evaluate.runlock import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with _llm_server(["<answer>Paris</answer>"] * 8) as server:
            args = (
                "eval", "run", "--out", str(out), "--methods", "closed_book", "-n", "2",
                "--llm-url", f"{server.url}/v1", "--model", "scripted", "--no-report",
            )  # fmt: skip
            refused = sleuth(*args, cache=tmp_path / "cache")
            assert_one_line_error(refused, "is in use by another", f"pid {holder.pid}")
            assert not (out / "results.jsonl").exists()
            holder.kill()  # killed: its PID stays in the lock file, its flock goes
            holder.wait(30)
            assert str(holder.pid) in (out / "run.lock").read_text()
            taken_over = sleuth(*args, cache=tmp_path / "cache")
    finally:
        holder.kill()
        holder.wait(30)
    assert taken_over.returncode == 0, taken_over.stderr
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_ctrl_c_in_eval_run_says_how_to_resume(tmp_path: Path) -> None:
    """item 3: Ctrl-C exits 130 with the hint that the same command resumes."""
    llm = StallingLLM()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SLEUTH_CACHE": str(tmp_path / "c")}
    with LiveServer(create_llm_app(llm)) as server:
        child = subprocess.Popen(
            [sys.executable, "-m", "sleuth.cli", "eval", "run", "--out", str(tmp_path / "run"),
             "--methods", "closed_book", "-n", "3", "--concurrency", "1", "--llm-url",
             f"{server.url}/v1", "--model", "scripted", "--no-report"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        assert llm.stalled.wait(60), child.communicate()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert "interrupted; re-run the same command to resume" in " ".join(stderr.split())
    assert "Traceback" not in stderr


def test_ask_refuses_a_blank_question_and_counts_in_the_singular(
    hostile_index: Path, tmp_path: Path
) -> None:
    """item 19: `ask ""` runs no episode; the stop line says "1 search", not "1 searches"."""
    for blank in ("", "  \n"):
        result = sleuth("ask", blank, "--index", str(hostile_index), cache=tmp_path / "c")
        assert_one_line_error(result, "the question is empty")
    with _llm_server(["<search>pronounced</search>", "<answer>Pekar</answer>"]) as server:
        result = sleuth(
            "ask", "How?", "--index", str(hostile_index), "--llm-url", f"{server.url}/v1",
            cache=tmp_path / "c",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "; 1 search, 2 steps," in " ".join(result.stdout.split())


def _long_answers(messages: list[dict]) -> str:
    """A proposer that searches once, then answers with a sentence (rejected: too long)."""
    if not any(m["role"] == "assistant" for m in messages):
        return "<search>Harvey Pekar</search>"
    return "<answer>the poet who was born in England and moved to America</answer>"


def test_synth_questions_that_writes_nothing_says_why_and_names_a_bigger_model(
    hostile_index: Path, tmp_path: Path
) -> None:
    """Issue 33 item 19: 0 questions written with the packaged model and no hint at all."""
    out = tmp_path / "q.jsonl"
    with LiveServer(create_llm_app(ScriptedLLM(_long_answers))) as server:
        result = sleuth(
            "synth", "questions", "-n", "2", "--hops", "1", "--no-answer-spans",
            "--index", str(hostile_index), "--llm-url", f"{server.url}/v1",
            "--model", "packaged", "--out", str(out), cache=tmp_path / "cache",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["written"] == 0
    message = " ".join(result.stderr.split())
    assert "wrote no questions: 0 of 2 proposals verified" in message
    proposals = Path(f"{out}.proposals.jsonl").read_text().splitlines()
    reasons = [json.loads(line)["rejected"] for line in proposals]
    assert len(reasons) == 2 and f"(rejected because: {reasons[0]} (2))" in message
    assert f"{out}.proposals.jsonl" in "".join(result.stderr.split())
    assert "--model qwen2.5-coder-0.5b" in message and "about a fifth" in message


def test_ask_links_reads_the_named_documents_once_with_the_model(
    hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    """``--links`` (eval's links pipeline): the question, then the names it and its best hit
    carry, each searched; one answer call over the best hit and the named paragraphs; agent
    flags are refused."""
    script = ScriptedLLM(["<answer>Achimenes</answer>"])
    question = "Which is a type of herb, Brassia or Achimenes?"
    with LiveServer(create_llm_app(script)) as server:
        result = sleuth(
            "ask", question, "--index", str(hotpot_bm25_path), "--llm-url",
            f"{server.url}/v1", "--links", cache=tmp_path / "cache",
        )  # fmt: skip
        refused = sleuth(
            "ask", question, "--index", str(hotpot_bm25_path), "--llm-url",
            f"{server.url}/v1", "--links", "--judge", cache=tmp_path / "cache",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"step 0 search {question}" in out and "search Brassia" in out
    assert "answer: Achimenes" in out and len(script.calls) == 1
    read = script.calls[0][-1]["content"]
    assert "Brassia" in read and "Achimenes" in read  # both named plants' paragraphs
    saved = next((tmp_path / "cache" / "runs" / "ask").glob("*.jsonl"))
    trajectory = json.loads(saved.read_text(encoding="utf-8"))
    assert (
        trajectory["metadata"]["pipeline"] == "links" and len(trajectory["metadata"]["read"]) == 3
    )
    assert refused.returncode != 0 and "--links runs a fixed pipeline" in refused.stderr


def test_ask_links_with_a_trained_searcher_is_not_refused(
    hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    """A trained searcher runs as one (--select) by default; with --links there is no agent,
    so that default gives way instead of refusing a --select the user never typed."""
    model = tmp_path / "my-searcher"
    model.mkdir()
    (model / "sleuth_training.json").write_text(json.dumps({"inference": {"searcher": True}}))
    script = ScriptedLLM(["<answer>Achimenes</answer>"], name=str(model))
    with LiveServer(create_llm_app(script)) as server:
        result = sleuth(
            "ask", "Which is a type of herb, Brassia or Achimenes?", "--index",
            str(hotpot_bm25_path), "--llm-url", f"{server.url}/v1", "--model", str(model),
            "--links", cache=tmp_path / "cache",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "answer: Achimenes" in result.stdout and "a searcher (--select)" not in result.stdout
