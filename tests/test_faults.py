"""Faults during an evaluation run, each against real processes on loopback: the disk fills, the
retrieval server dies and comes back, the LLM endpoint errors, stalls, talks garbage or cuts its
answer short. The run records or stops cleanly, and a resumed run ends exactly where an
uninterrupted run does (same records, none lost, none duplicated)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from conftest import free_port
from test_eval_runner import SETTINGS, _outcomes, _raw_keys, _run_driver, policy

from sleuth.evaluate.records import ResultLog

N = 6
TOTAL = N * len(SETTINGS.methods) * len(SETTINGS.seeds)

# The real runner with the scripted policy, fetching answers from an LLM URL and/or searching
# through a retrieval server URL. argv: json options, tests dir
DRIVER = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[2])
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.runner import EvaluationRunner
from sleuth.llm.openai_http import OpenAIChatLLM
from sleuth.llm.scripted import ScriptedLLM
from sleuth.search import open_index
from sleuth.search.remote import RemoteSearchEngine
from test_eval_runner import policy, SlowLLM, SETTINGS

o = json.loads(sys.argv[1])
questions = load_benchmark("hotpotqa-1100:test", limit=o["n"]).questions
if o.get("llm_url"):
    llm = OpenAIChatLLM(o["llm_url"], "scripted", timeout=1.0, max_retries=2, backoff_s=0.05)
else:
    llm = ScriptedLLM(policy)
llm = SlowLLM(llm, o.get("delay", 0.0))
engine = RemoteSearchEngine(o["search_url"]) if o.get("search_url") else open_index(o["index"])
outcome = asyncio.run(EvaluationRunner(o["out"], SETTINGS, questions, llm, engine).run())
print(outcome.ran, outcome.skipped, outcome.failed)
"""


def _driver(options: dict, **popen) -> subprocess.Popen:
    tests_dir = str(Path(__file__).resolve().parent)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(options), tests_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clean_run(hotpot_bm25_path, tmp_path_factory) -> Path:
    """The uninterrupted reference: in-process engine and policy, no faults."""
    out = tmp_path_factory.mktemp("clean") / "run"
    done = _run_driver(hotpot_bm25_path, out, N, 0.0)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    return out


def _assert_same_end(run: Path, clean: Path) -> None:
    records = ResultLog(run / "results.jsonl").read()
    assert len(records) == TOTAL and not [r for r in records if r.get("error")]
    assert _outcomes(run) == _outcomes(clean)
    assert len(ResultLog(run / "results.jsonl").keys()) == TOTAL


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past ``limit`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_completes_it(
    tmp_path, hotpot_bm25_path, clean_run
):
    out = tmp_path / "run"
    options = {"index": str(hotpot_bm25_path), "out": str(out), "n": N}
    full = _driver(options, preexec_fn=_file_size_limit(24_000))
    _, stderr = full.communicate(timeout=120)
    assert full.returncode != 0
    assert "cannot write to" in stderr and "re-run the same command to resume" in stderr
    written = len(_raw_keys(out))
    assert 0 < written < TOTAL  # it stopped part-way, keeping what it had

    resumed = _driver(options)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    ran, skipped, failed = map(int, stdout.split())
    assert failed == 0 and ran + skipped == TOTAL
    _assert_same_end(out, clean_run)
    assert len(_raw_keys(out)) == TOTAL  # no record written twice


def _serve(index: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError("sleuth serve did not start")


def test_the_retrieval_server_dying_mid_run_is_recorded_then_retried(
    tmp_path, hotpot_bm25_path, clean_run
):
    port = free_port()
    server = _serve(hotpot_bm25_path, port)
    out = tmp_path / "run"
    options = {"search_url": f"http://127.0.0.1:{port}", "out": str(out), "n": N, "delay": 0.05}
    run = _driver(options)
    try:
        results = out / "results.jsonl"
        deadline = time.monotonic() + 60
        while not (results.is_file() and len(results.read_text().splitlines()) >= 6):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)  # the server dies mid-run ...
        server.wait()
        time.sleep(3.0)  # ... for longer than the client's retries last ...
        server = _serve(hotpot_bm25_path, port)  # ... and comes back on the same port
        stdout, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, stderr  # the run kept going
    ran, skipped, failed = map(int, stdout.split())
    assert ran == TOTAL and failed > 0  # the outage cost some episodes, recorded as failures
    errors = [r for r in ResultLog(out / "results.jsonl").read() if r.get("error")]
    assert len(errors) == failed and all("unreachable" in r["error"] for r in errors)

    try:
        again = _driver(options)
        stdout, stderr = again.communicate(timeout=120)
    finally:
        server.kill()
    assert again.returncode == 0, stderr
    ran, skipped, failed = map(int, stdout.split())
    assert ran == len(errors) and skipped == TOTAL - len(errors) and failed == 0
    _assert_same_end(out, clean_run)


class FaultyLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint answering with the scripted policy, with faults on a fixed
    schedule: 500, 429, a stall past the client's timeout, garbage, a body cut mid-way."""

    faults: ClassVar[bool] = True
    count: ClassVar[int] = 0
    served: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        with self.lock:
            type(self).count += 1
            n = type(self).count
        fault = ""
        if self.faults:
            schedule = ((23, "stall"), (17, "cut"), (13, "garbage"), (7, "429"), (5, "500"))
            fault = next((kind for every, kind in schedule if n % every == 0), "")
            with self.lock:
                self.served[fault] = self.served.get(fault, 0) + 1
        if fault == "stall":
            time.sleep(1.5)
        text = policy(body["messages"])
        for stop in body.get("stop") or []:
            text = text.split(stop)[0]
        payload = json.dumps(
            {
                "model": "scripted",
                "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        ).encode()
        status = {"500": 500, "429": 429}.get(fault, 200)
        if fault == "garbage":
            payload = b"<html>upstream proxy error</html>"
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if fault == "cut" else payload)
            if fault == "cut":
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


def test_llm_endpoint_faults_are_retried_or_recorded_and_resume_matches(
    tmp_path, clean_run, hotpot_bm25_path
):
    FaultyLLM.faults, FaultyLLM.count, FaultyLLM.served = True, 0, {}
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FaultyLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "run"
        options = {
            "index": str(hotpot_bm25_path), "out": str(out), "n": N,
            "llm_url": f"http://127.0.0.1:{server.server_address[1]}/v1",
        }  # fmt: skip
        first = _driver(options)
        stdout, stderr = first.communicate(timeout=180)
        assert first.returncode == 0, stderr
        ran, _, failed = map(int, stdout.split())
        assert ran == TOTAL and FaultyLLM.count > TOTAL  # faults were hit and retried
        assert 0 < failed < TOTAL // 2  # most faults were retried away
        records = ResultLog(out / "results.jsonl").read()
        errors = [r["error"] for r in records if r.get("error")]
        assert len(errors) == failed  # what retries could not fix is recorded per question
        # garbage is never retried (a proxy's HTML page will not turn into JSON): each one served
        # cost exactly one question; any other failure is a request whose 3 tries all hit faults
        assert sum("non-JSON" in e for e in errors) == FaultyLLM.served.get("garbage", 0)
        known = ("non-JSON", "answered 500", "answered 429", "timed out 3 times", "cannot reach")
        unexplained = [e for e in errors if not any(s in e for s in known)]
        assert not unexplained

        FaultyLLM.faults = False  # the endpoint recovers
        again = _driver(options)
        stdout, stderr = again.communicate(timeout=180)
        assert again.returncode == 0, stderr
        ran, _, failed = map(int, stdout.split())
        assert ran == len(errors) and failed == 0
        _assert_same_end(out, clean_run)
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    """200k short generated passages: a build that takes seconds, long enough to be killed."""
    import random

    rng = random.Random(0)
    words = [f"w{n}" for n in range(5000)]
    path = tmp_path_factory.mktemp("big") / "corpus.jsonl"
    with path.open("w") as handle:
        for n in range(200_000):
            text = " ".join(rng.choices(words, k=12))
            handle.write(json.dumps({"id": f"d{n}", "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def build_seconds(big_corpus, tmp_path_factory) -> float:
    """How long a whole ``sleuth index`` of ``big_corpus`` takes here, start-up included: the
    kills below are timed as shares of it (fixed delays missed on a quiet machine, where the
    build finished in under 3 s)."""
    command = _index_command(big_corpus, tmp_path_factory.mktemp("timed") / "idx")
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    return time.perf_counter() - started


def _index_command(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "sleuth.cli", "index", str(corpus), "--out", str(out)]


@pytest.mark.parametrize("share", [0.15, 0.35, 0.55])
def test_kill_9_of_an_index_build_never_leaves_a_half_index(
    tmp_path, big_corpus, build_seconds, share
):
    """``sleuth index`` killed at a moment into a rebuild over an existing index: the folder
    still holds the old complete index; a re-run builds the new one and clears the debris."""
    from sleuth.search import build_index, open_index
    from sleuth.types import Document

    target = tmp_path / "idx"
    build_index([Document(f"old{i}", "", f"old text {i}") for i in range(7)], target)
    command = _index_command(big_corpus, target)
    build = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(share * build_seconds)
    build.send_signal(signal.SIGKILL)
    assert build.wait() == -signal.SIGKILL  # killed before it finished
    assert len(open_index(target)) == 7  # the old index, whole
    rebuilt = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(open_index(target)) == 200_000
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no temporary folder left behind
