"""Issue 33 items 10, 11, 12, 15 and 17: hostile paths in banners, damaged run files, a
read-only run folder, the model a remote server serves, and unknown model names.

Real ``sleuth`` processes, a real run folder (real BM25 index, the real runner and agent loop
with a scripted policy), the real viewer on loopback, a real OpenAI-compatible HTTP server on
loopback (a stub: the remote LLM is the one external thing)."""

from __future__ import annotations

import html
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer
from view_support import make_run

from sleuth.corpus import load_documents
from sleuth.search import build_index
from sleuth.view.app import create_app
from sleuth.view.runs import load_runs
from sleuth.view.state import ViewerState

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
        # a regression must fail fast, never build the 1.6 GB OpenVINO exporter environment
        "SLEUTH_OV_EXPORT_PYTHON": str(cache / "no-exporter" / "python"),
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


# ---- item 11: damaged run files are named line by line; the rest is served and reported -----

DAMAGE = {  # what each damaged trajectory holds, and the message that names it
    "steps": (lambda t: t.update(steps={"a": 1}), "trajectory.steps is an object, not a list"),
    "hits": (lambda t: t["steps"][0].update(hits="doc1"), "steps[0].hits is a string, not a list"),
    "metadata": (lambda t: t.update(metadata=[]), "trajectory.metadata is a list, not an object"),
    "observation": (
        lambda t: t["steps"][0].update(observation=123),
        "steps[0].observation is an integer, not a string",
    ),
}


def _damaged_run(clean_run: Path, out: Path) -> tuple[Path, dict[str, tuple[str, int, str]]]:
    """A copy of the run with four trajectories damaged (one per kind) and a garbage line as
    line 3 of ``results.jsonl``; ``{kind: (episode id, line number, message)}``."""
    shutil.copytree(clean_run, out)
    path = out / "trajectories.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    with_steps = [i for i, line in enumerate(lines) if json.loads(line)["steps"]]
    damaged = {}
    for kind, number in zip(DAMAGE, with_steps, strict=False):
        data = json.loads(lines[number])
        DAMAGE[kind][0](data)
        lines[number] = json.dumps(data)
        damaged[kind] = (data["episode_id"], number + 1, DAMAGE[kind][1])
    assert len(damaged) == len(DAMAGE)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = out / "results.jsonl"
    rows = results.read_text(encoding="utf-8").splitlines()
    rows.insert(2, "garbage {not json")
    results.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out, damaged


def test_the_viewer_serves_a_run_with_damaged_lines_and_names_each(
    clean_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run, damaged = _damaged_run(clean_run, tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        runs = load_runs([run])  # was: TypeError/SleuthError for `steps` and `hits`
    warnings = caplog.text
    for episode_id, number, message in damaged.values():
        assert f"{run / 'trajectories.jsonl'}:{number}: skipped the damaged trajectory" in warnings
        assert episode_id in warnings and message in warnings
    assert f"{run / 'results.jsonl'}:3: skipped a line that is not JSON" in warnings
    records = len((clean_run / "results.jsonl").read_text().splitlines())
    assert len(runs["run"].episodes) == records  # every record but the garbage line

    state = ViewerState(runs, tmp_path / "feedback.jsonl")
    broken = {episode_id: (number, message) for episode_id, number, message in damaged.values()}
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/").status_code == 200 and http.get("/episodes").status_code == 200
        for episode in runs["run"].episodes.values():  # was: 500 for `metadata` and `observation`
            page = http.get("/episode", params={"run": "run", "id": episode.id})
            compare = http.get("/compare", params={"question_id": episode.question_id})
            assert compare.status_code == 200
            if episode.id not in broken:
                assert page.status_code == 200, (episode.id, page.text[:300])
                continue
            number, message = broken[episode.id]
            assert page.status_code == 400  # a page that names the damage, not a 500
            text = html.unescape(page.text)
            assert f"trajectories.jsonl:{number}: {message}" in text and "is damaged" in text


def test_eval_report_reports_a_run_with_damaged_lines_and_names_each(
    clean_run: Path, tmp_path: Path
) -> None:
    run, damaged = _damaged_run(clean_run, tmp_path / "run")
    result = sleuth("eval", "report", str(run), cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr  # was: AttributeError for a `hits` string
    assert "Traceback" not in result.stderr
    stderr = _one_line(result.stderr)
    for _, number, message in damaged.values():
        assert f"trajectories.jsonl:{number}: skipped the damaged trajectory" in stderr
        assert message in stderr
    assert stderr.count("results.jsonl:3: skipped a line that is not JSON") == 1  # once
    report = json.loads((run / "report.json").read_text())
    assert len(report["results"]) == len((clean_run / "results.jsonl").read_text().splitlines())


# ---- item 12: an unwritable feedback log is refused at start, and named if it fails later ----


def test_view_refuses_an_unwritable_feedback_log_at_start(clean_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder would be\n")  # unwritable, even as root
    log = blocker / "feedback.jsonl"
    result = sleuth(
        "view", str(clean_run), "--port", "0", "--feedback", str(log), cache=tmp_path / "cache"
    )
    assert result.returncode == 2, result.stderr  # was: served, then 500 on every click
    message = _one_line(result.stderr)
    assert f"cannot write the feedback log {log}" in message and "--feedback FILE" in message
    assert "Traceback" not in result.stderr and "open http" not in result.stderr


def test_view_refuses_a_read_only_folder_for_its_default_log(
    clean_run: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "read-only"
    run = parent / "run"
    shutil.copytree(clean_run, run)
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("chmod does not stop this user (root): the test above covers it")
        result = sleuth("view", str(run), "--port", "0", cache=tmp_path / "cache")
    finally:
        parent.chmod(0o755)
    assert result.returncode == 2, result.stderr
    message = _one_line(result.stderr)
    assert f"cannot write the feedback log {parent / 'feedback.jsonl'}" in message
    assert "--feedback FILE" in message


def test_a_feedback_log_that_breaks_while_serving_is_a_named_error(
    clean_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    log = tmp_path / "feedback.jsonl"
    state = ViewerState(load_runs([clean_run]), log)
    assert not log.exists()  # the start-up check leaves nothing behind
    log.mkdir()  # the log can no longer be appended to (a folder now), even as root
    episode = next(e for e in state.episodes() if e.trajectory and e.trajectory.steps)
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        page = http.get("/episode", params={"run": episode.run, "id": episode.id}).text
        token = page.split('name="token" value="')[1].split('"')[0]
        form = {"token": token, "run": episode.run, "episode": episode.id, "step": "0"}
        with caplog.at_level(logging.ERROR):
            answer = http.post("/feedback", data={**form, "value": "up"})
    assert answer.status_code == 400  # was: 500 with nothing logged
    assert "cannot write the feedback log" in answer.text and "--feedback FILE" in answer.text
    logged = caplog.text + capfd.readouterr().err  # the server's logging setup may own it
    assert f"cannot write the feedback log {log}" in logged


def test_a_trajectory_log_names_a_damaged_record_by_file_and_line(tmp_path: Path) -> None:
    """The log that forks and ``ask`` append to: a damaged record in the middle is a
    ``SleuthError`` naming file, line and field (was: an uncaught ValueError traceback)."""
    from sleuth.agent import TrajectoryLog
    from sleuth.errors import SleuthError

    good = {"episode_id": "e1", "question": "q?", "steps": []}
    path = tmp_path / "t.jsonl"
    lines = [good, {**good, "episode_id": "e2", "steps": {"a": 1}}, good]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(SleuthError, match=r"t\.jsonl:2: corrupt trajectory record .*steps is an"):
        TrajectoryLog(path).read()


# ---- item 15: a run against --llm-url without --model records the model the server serves ---


class StubLLMServer:
    """A real OpenAI-compatible HTTP server on loopback (the remote LLM is the one external
    thing): ``/v1/models`` lists ``models``; every chat completion answers Denise Levertov and
    remembers the model it was asked for."""

    def __init__(self, models: list[str]) -> None:
        import http.server
        import threading

        stub = self
        self.asked: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    return self._send(404, {"error": "not found"})
                self._send(200, {"object": "list", "data": [{"id": m} for m in models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                stub.asked.append(body.get("model"))
                message = {"role": "assistant", "content": "<answer>Denise Levertov</answer>"}
                usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                self._send(200, {"choices": [choice], "usage": usage, "model": body["model"]})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _eval_run(out: Path, url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return sleuth(
        "eval", "run", "--out", str(out), "--methods", "closed_book", "-n", "2",
        "--llm-url", url, "--no-report", *extra, cache=tmp_path / "cache",
    )  # fmt: skip


def test_a_run_against_a_server_records_the_model_it_serves(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with StubLLMServer(["stub-model-7b"]) as server:
        result = _eval_run(out, server.url, tmp_path)
        assert result.returncode == 0, result.stderr
        assert set(server.asked) == {"stub-model-7b"}  # was: "default"
        sleuth("eval", "report", str(out), cache=tmp_path / "cache")
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "stub-model-7b"  # was: "packaged"
    assert json.loads((out / "report.json").read_text())["model"] == "stub-model-7b"
    trajectories = (out / "trajectories.jsonl").read_text().splitlines()
    assert {json.loads(line)["model"] for line in trajectories} == {"stub-model-7b"}


def test_a_run_recorded_as_packaged_by_an_older_sleuth_still_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with StubLLMServer(["stub-model-7b"]) as server:
        assert _eval_run(out, server.url, tmp_path, "-n", "1").returncode == 0
        config = json.loads((out / "config.json").read_text())
        (out / "config.json").write_text(json.dumps({**config, "model": "packaged"}))  # as before
        result = _eval_run(out, server.url, tmp_path)  # -n 2: one more question
    assert result.returncode == 0, result.stderr
    assert "1 episodes run" in _one_line(result.stderr) and "1 already done" in result.stderr
    assert json.loads((out / "config.json").read_text())["model"] == "stub-model-7b"


@pytest.mark.parametrize("models", [["a-model", "b-model"], []])
def test_a_server_with_several_or_no_models_needs_model(models: list[str], tmp_path: Path) -> None:
    with StubLLMServer(models) as server:
        result = _eval_run(tmp_path / "run", server.url, tmp_path)
        assert not server.asked  # refused before any episode
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = _one_line(result.stderr)
    what = "2 models (a-model, b-model)" if models else "no model"
    assert f"serves {what}; choose one with --model" in message
    assert not (tmp_path / "run" / "config.json").exists()


def test_an_unreachable_server_without_model_is_one_clear_error(tmp_path: Path) -> None:
    result = _eval_run(tmp_path / "run", "http://127.0.0.1:9/v1", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = _one_line(result.stderr)
    assert "cannot ask the LLM server at http://127.0.0.1:9/v1 which model it serves" in message
    assert "name the model with --model" in message


# ---- item 17: an unknown --model is refused before anything is built or downloaded ----------

UNKNOWN = "unknown model 'nonexistent-model-xyz': not a named model (`sleuth model list`), a local"


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "run", "--out", "{tmp}/run", "--methods", "closed_book", "-n", "1"],
        ["ask", "Who was born earlier?", "--index", "{index}"],
        ["model", "prepare"],
        ["serve-llm", "--port", "0"],
        ["view", "{run}", "--port", "0"],
        ["mcp", "{index}"],
    ],
    ids=lambda c: c[0] if c[0] != "model" else "model-prepare",
)
def test_an_unknown_model_name_is_refused_before_any_work(
    command: list[str], small_index: Path, clean_run: Path, tmp_path: Path
) -> None:
    fill = {"tmp": str(tmp_path), "index": str(small_index), "run": str(clean_run)}
    args = [part.format(**fill) for part in command]
    cache = tmp_path / "cache"
    args += ["--model", "nonexistent-model-xyz"]
    result = sleuth(*args, cache=cache, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr  # was: an exporter build, a Hub call, a traceback
    assert UNKNOWN in _one_line(result.stderr) and "Traceback" not in result.stderr
    assert not (cache / "tools").exists() and not (cache / "models").exists()  # nothing built
    assert not (tmp_path / "run").exists()


def test_a_file_or_folder_that_is_not_a_model_is_refused_and_hub_ids_pass(tmp_path: Path) -> None:
    from sleuth.errors import SleuthError
    from sleuth.llm.models import check_model_spec

    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    result = sleuth("model", "prepare", "--model", str(notes), cache=tmp_path / "cache")
    assert result.returncode == 2  # was: taken for a Hub repo id
    message = _one_line(result.stderr)
    assert f"unknown model {str(notes)!r}: a file, but not a .gguf model" in message
    with pytest.raises(SleuthError, match="the folder holds no model"):
        check_model_spec(tmp_path)
    with pytest.raises(SleuthError, match="no such GGUF file"):
        check_model_spec(tmp_path / "missing.gguf")
    with pytest.raises(SleuthError, match="no-such-model': no such folder or file"):
        check_model_spec(str(tmp_path / "no-such-model"))  # a path, not taken for a Hub id
    for accepted in ("Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct",
                     "packaged", None, "qwen2.5-coder-0.5b", "smollm2-135m-primed"):  # fmt: skip
        check_model_spec(accepted)  # named models, shipped adapters and Hub ids still load
    (tmp_path / "config.json").write_text("{}")
    check_model_spec(tmp_path)  # a folder with a model's config is a model folder
