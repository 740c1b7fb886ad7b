"""The trajectory viewer, user debug mode, shadow user and feedback export, on a real run
(real BM25 index, the real runner and agent loop, a deterministic scripted model) served by a
real server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer
from markupsafe import escape
from typer.testing import CliRunner
from view_support import policy

from sleuth.agent import Agent, AgentConfig, TrajectoryLog
from sleuth.agent.trajectory import Trajectory
from sleuth.cli import app as cli
from sleuth.errors import SleuthError
from sleuth.llm.base import Completion, Usage
from sleuth.llm.scripted import ScriptedLLM
from sleuth.rewards import REWARDS, Gold, attach_step_rewards, load_step_rewards
from sleuth.view.app import create_app
from sleuth.view.export import export
from sleuth.view.feedback import FeedbackLog, forks_path, read_feedback
from sleuth.view.filters import EpisodeFilter, outcome, select
from sleuth.view.replay import Edit, replay
from sleuth.view.runs import load_runs
from sleuth.view.shadow import llm_feedback, parse_review, rule_feedback
from sleuth.view.state import ViewerState


@pytest.fixture(scope="module")
def run_dir(hotpot_bm25_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from view_support import make_run

    return make_run(hotpot_bm25_path, tmp_path_factory.mktemp("view") / "run-a")


@pytest.fixture(scope="module")
def run(run_dir: Path):
    return load_runs([run_dir])["run-a"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _agent_episode(run, searches: int = 2):
    """The first agent episode with ``searches`` searches, by question id: the results file is
    in completion order, which varies between runs (two episodes run at once)."""
    return min(
        (
            e
            for e in run.episodes.values()
            if e.method == "agent" and e.record["searches"] == searches
        ),
        key=lambda e: e.question_id,
    )


# ---- loading and filtering -------------------------------------------------------------------


def test_hits_carry_titles_and_gold_flags_from_the_run(run, hotpot_bm25) -> None:
    episode = _agent_episode(run)
    gold = {a for item in episode.trajectory.metadata["gold_evidence"] for a in item}
    for i, _step in enumerate(episode.trajectory.steps):
        for hit in episode.hits(i):
            assert hit.title == hotpot_bm25.get(hit.id).title
            assert hit.gold == (hit.id in gold)
    assert any(h.gold for i in range(2) for h in episode.hits(i))


def test_filters_select_by_method_outcome_searches_and_correctness(run) -> None:
    episodes = list(run.episodes.values())
    assert {outcome(e) for e in episodes} >= {"solved", "misused", "hallucinated"}
    for e in episodes:  # the evaluation's own category is reused, never recomputed
        assert outcome(e) == e.record["category"]
    agents = select(episodes, EpisodeFilter(method="agent"))
    assert agents and all(e.method == "agent" for e in agents)
    misused = select(episodes, EpisodeFilter(outcome="misused", method="rag"))
    assert [e.record["category"] for e in misused] == ["misused"] * len(misused)
    assert select(episodes, EpisodeFilter(searches="2")) == select(
        episodes, EpisodeFilter(method="agent")
    )
    assert all(e.record["searches"] >= 1 for e in select(episodes, EpisodeFilter(searches="1+")))
    right = select(episodes, EpisodeFilter(correct="yes"))
    assert right and all(e.record["cover_em"] == 1.0 for e in right)
    assert len(right) + len(select(episodes, EpisodeFilter(correct="no"))) == len(episodes)
    assert [e.question_id for e in select(episodes, EpisodeFilter(question="hamlet"))] == [
        "evil-1"
    ] * 3


# ---- replay ----------------------------------------------------------------------------------


def test_replay_from_a_later_step_is_the_run_the_model_would_have_had(run, hotpot_bm25) -> None:
    """Editing step 1's query must give the model exactly the conversation a fresh run whose
    second search was that query gives it, and the same steps after."""
    parent = _agent_episode(run).trajectory
    better = "Denise Levertov American poet"

    def edited_policy(messages: list[dict]) -> str:
        out = policy(messages)
        searched = sum(
            "<search>" in str(m.get("content")) for m in messages if m["role"] == "assistant"
        )
        return f"<search>{better}</search>" if searched == 1 else out

    fresh_llm, fork_llm = ScriptedLLM(edited_policy), ScriptedLLM(policy)
    config = AgentConfig(**parent.config)
    fresh = asyncio.run(Agent(fresh_llm, hotpot_bm25, config).run(parent.question))
    fork = asyncio.run(replay(parent, Edit("query", 1, better), fork_llm, hotpot_bm25))

    assert fork_llm.calls == fresh_llm.calls[2:]  # same messages, byte for byte
    assert [(s.action, s.argument, [h.id for h in s.hits], s.observation) for s in fork.steps] == [
        (s.action, s.argument, [h.id for h in s.hits], s.observation) for s in fresh.steps
    ]
    assert fork.steps[0].model_output == parent.steps[0].model_output  # the prefix is the parent's
    assert [h.id for h in fork.steps[1].hits] == [h.id for h in hotpot_bm25.search(better, 3)]
    assert fork.answer == fresh.answer and fork.stop_reason == "answered"
    assert fork.metadata["parent_episode_id"] == parent.episode_id
    assert fork.metadata["parent_step"] == 1 and fork.episode_id != parent.episode_id


def test_drop_and_pin_rewrite_the_results_the_model_reads(run, hotpot_bm25) -> None:
    rag = next(
        e for e in run.episodes.values() if e.method == "rag" and e.record["category"] == "solved"
    )
    parent = rag.trajectory
    first = parent.steps[0].hits[0].id
    dropped = asyncio.run(replay(parent, Edit("drop", 0, first), ScriptedLLM(policy), hotpot_bm25))
    assert [h.id for h in dropped.steps[0].hits] == [h.id for h in parent.steps[0].hits[1:]]
    assert first not in dropped.steps[0].observation
    assert dropped.answer == hotpot_bm25.get(parent.steps[0].hits[1].id).title  # it read the rest

    pinned = asyncio.run(replay(parent, Edit("pin", 0, "doc1"), ScriptedLLM(policy), hotpot_bm25))
    assert pinned.steps[0].hits[0].id == "doc1"
    assert pinned.answer == hotpot_bm25.get("doc1").title


def test_answer_edit_needs_no_model_and_bad_edits_are_refused(run) -> None:
    parent = _agent_episode(run).trajectory
    fork = asyncio.run(replay(parent, Edit("answer", 2, "Denise Levertov"), None, None))
    assert fork.answer == "Denise Levertov" and fork.steps[-1].model_output == (
        "<answer>Denise Levertov</answer>"
    )
    assert len(fork.steps) == 3
    for edit, message in [
        (Edit("query", 2, "x"), "only search steps"),
        (Edit("query", 9, "x"), "does not exist"),
        (Edit("drop", 0, "no-such-doc"), "no hit"),
        (Edit("query", 0, "   "), "non-empty"),
        (Edit("rename", 0, "x"), "edit must be one of"),
    ]:
        with pytest.raises(SleuthError, match=message):
            asyncio.run(replay(parent, edit, ScriptedLLM(policy), None))
    with pytest.raises(SleuthError, match="needs a model"):
        asyncio.run(replay(parent, Edit("query", 0, "x"), None, None))


# ---- the feedback log ------------------------------------------------------------------------


def test_feedback_log_is_append_only_and_survives_a_torn_line(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    first = log.append({"kind": "thumb", "episode_id": "e", "step": 0, "value": 1})
    with log.path.open("ab") as handle:  # a crash mid-write
        handle.write(b'{"kind": "thumb", "episode_id": "e", "st')
    second = log.append({"kind": "thumb", "episode_id": "e", "step": 1, "value": -1})
    assert [r["id"] for r in read_feedback(log.path)] == [first["id"], second["id"]]
    with pytest.raises(SleuthError, match="value is 1"):
        log.append({"kind": "thumb", "episode_id": "e", "step": 0, "value": 5})
    with pytest.raises(SleuthError, match="kind must be"):
        log.append({"kind": "rm -rf"})


# ---- the web app -----------------------------------------------------------------------------


def _token(html: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def test_pages_escape_everything_and_feedback_never_touches_the_run(
    run_dir: Path, hotpot_bm25, tmp_path: Path
) -> None:
    before = _digest(run_dir)
    log_path = tmp_path / "feedback.jsonl"
    state = ViewerState(load_runs([run_dir]), log_path, engine=hotpot_bm25, llm=ScriptedLLM(policy))
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        home = http.get("/")
        assert (
            home.status_code == 200
            and "script-src 'self'" in home.headers["content-security-policy"]
        )
        assert all(f'data-method="{m}"' in home.text for m in ("closed_book", "rag", "agent"))
        assert http.get("/static/viewer.js").status_code == 200
        assert "http://" not in home.text and "https://" not in home.text  # no CDN

        listed = http.get("/episodes", params={"method": "agent", "outcome": "misused"}).text
        rows = re.findall(r'class="episode-row" data-outcome="(\w+)" data-method="(\w+)"', listed)
        assert rows and set(rows) == {("misused", "agent")}

        evil = http.get("/episode", params={"run": "run-a", "id": "evil-1::agent::s0"}).text
        assert "<script>alert" not in evil and "<img src=x" not in evil
        assert "&lt;script&gt;alert(" in evil  # shown, as text

        compare = http.get("/compare", params={"question_id": "evil-1"}).text
        assert compare.count('class="column"') == 3 and "<script>alert" not in compare

        episode_id = "evil-1::agent::s0"
        page = http.get("/episode", params={"run": "run-a", "id": episode_id}).text
        form = {"token": _token(page), "run": "run-a", "episode": episode_id, "step": "0"}
        hit = re.search(r'data-hit="([^"]+)"', page).group(1)
        assert http.post("/feedback", data={**form, "value": "down", "hit": hit}).status_code == 303
        assert http.post("/feedback", data={**form, "value": "up", "token": "x"}).status_code == 403
        bad = http.post("/replay", data={**form, "kind": "pin", "text": "no-such-doc"})
        assert bad.status_code == 400 and "no-such-doc" in bad.text
        replayed = http.post(
            "/replay",
            data={**form, "kind": "query", "text": "Hamlet Shakespeare"},
            follow_redirects=True,
        )
        assert replayed.status_code == 200
        assert 'class="fork"' in replayed.text and "Hamlet Shakespeare" in replayed.text

    records = read_feedback(log_path)
    assert [r["kind"] for r in records] == ["thumb", "query"]
    assert records[0]["hit_id"] == hit and records[0]["value"] == -1
    assert records[1]["better_query"] == "Hamlet Shakespeare" and records[1]["fork_id"]
    assert _digest(run_dir) == before  # the run's files are untouched


# ---- shadow user -----------------------------------------------------------------------------


def test_rule_shadow_user_marks_gold_hits_useful_and_suggests_gold_titles(run) -> None:
    episode = next(
        e
        for e in run.episodes.values()
        if e.record["category"] == "hallucinated" and e.method == "rag"
    )
    records = rule_feedback(episode)
    hits = {r["hit_id"]: r["value"] for r in records if r.get("target") == "hit"}
    assert hits == {h.id: (1 if h.gold else -1) for h in episode.hits(0)}
    step = next(r for r in records if r.get("target") == "step" and r["step"] == 0)
    assert step["value"] == (1 if any(h.gold for h in episode.hits(0)) else -1)
    titles = [item[-1] for item in episode.trajectory.metadata["gold_evidence"]]
    if step["value"] == -1:
        better = next(r for r in records if r["kind"] == "query")
        assert better["better_query"] == " ".join(titles)
    answer = [r for r in records if r.get("action") == "answer"]
    assert answer and answer[0]["value"] == -1  # the episode answered wrongly
    assert all(r["source"] == "simulated:rules" for r in records)


def test_llm_shadow_user_output_is_parsed_defensively(run) -> None:
    episode = _agent_episode(run)
    real = episode.hits(0)[0].id
    reply = "<script>ignore</script> Sure! {not json} " + json.dumps(
        {
            "steps": [
                {
                    "step": 0,
                    "query_good": "no",
                    "better_query": "Levertov poet",
                    "useful_hits": [real, "doc-invented"],
                },
                {"step": 2, "query_good": False, "useful_hits": []},  # an answer step: ignored
                {"step": 77, "query_good": True},  # no such step
                {"step": 1, "query_good": True, "better_query": "x" * 5000, "useful_hits": "all"},
                "garbage",
            ]
        }
    )
    verdicts = parse_review(reply, episode)
    assert [(v.step, v.query_good, v.useful_hits) for v in verdicts] == [
        (0, False, (real,)),
        (1, True, ()),
    ]
    assert verdicts[0].better_query == "Levertov poet" and len(verdicts[1].better_query) <= 300
    assert parse_review("I cannot help with that.", episode) == []

    llm = ScriptedLLM([Completion(reply, usage=Usage(10, 10))])
    records = asyncio.run(llm_feedback(episode, llm))
    assert "Correct answer: Denise Levertov" in llm.calls[0][1]["content"]
    assert {r["source"] for r in records} == {"simulated:llm"}
    assert any(r["kind"] == "query" and r["better_query"] == "Levertov poet" for r in records)
    useful = {r["hit_id"] for r in records if r.get("target") == "hit" and r["value"] == 1}
    assert useful == {real}


# ---- the whole loop: feedback in the page -> export -> training input that loads ----------------


def test_feedback_from_the_page_exports_to_training_inputs_that_load(
    run_dir: Path, hotpot_bm25, tmp_path: Path
) -> None:
    log_path = tmp_path / "fb" / "feedback.jsonl"
    state = ViewerState(load_runs([run_dir]), log_path, engine=hotpot_bm25, llm=ScriptedLLM(policy))
    episode_id = next(
        e.id
        for e in state.runs["run-a"].episodes.values()
        if e.method == "rag" and e.record["category"] == "hallucinated"
    )
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        page = http.get("/episode", params={"run": "run-a", "id": episode_id}).text
        form = {"token": _token(page), "run": "run-a", "episode": episode_id}
        hits = re.findall(r'data-hit="([^"]+)"', page)
        gold = state.runs["run-a"].episodes[episode_id].trajectory.metadata["gold_evidence"][0][0]
        http.post("/replay", data={**form, "step": "0", "kind": "pin", "text": gold})
        http.post("/replay", data={**form, "step": "0", "kind": "drop", "text": hits[0]})
        http.post("/replay", data={**form, "step": "1", "kind": "answer", "text": "Hamlet"})
        http.post("/feedback", data={**form, "step": "1", "value": "down", "comment": "wrong"})
        http.post("/feedback", data={**form, "step": "0", "value": "up", "hit": hits[1]})

    out = tmp_path / "out"
    assert export(log_path, "sft", out / "sft.jsonl") >= 1
    sft = TrajectoryLog(out / "sft.jsonl").read()
    assert "Hamlet" in [t.answer for t in sft]
    for line in (out / "sft.jsonl").read_text().splitlines():
        assert Trajectory.from_dict(json.loads(line)).metadata["parent_episode_id"] == episode_id
    assert export(log_path, "sft", out / "all.jsonl", keep_all=True) == 3

    assert export(log_path, "retriever", out / "triples.jsonl") >= 1
    from datasets import Dataset

    triples = Dataset.from_json(str(out / "triples.jsonl"))
    assert triples.column_names == ["query", "positive", "negative"]
    assert hotpot_bm25.get(gold).text in triples[0]["positive"]
    assert hotpot_bm25.get(hits[0]).text in "\n".join(triples["negative"])

    assert export(log_path, "reward", out / "rewards.jsonl") == 1
    labels = load_step_rewards(out / "rewards.jsonl")
    assert labels == {episode_id: {1: -1.0}}
    parent = state.runs["run-a"].episodes[episode_id].trajectory
    assert REWARDS["feedback"](attach_step_rewards(parent, labels), Gold(["x"])) == -1.0
    assert forks_path(log_path).is_file()


# ---- the command line ----------------------------------------------------------------------


def test_cli_simulates_and_exports_and_refuses_bad_input(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    log = tmp_path / "feedback.jsonl"
    result = runner.invoke(
        cli, ["feedback", "simulate", str(run_dir), "--shadow", "rules", "--feedback", str(log)]
    )
    assert result.exit_code == 0, result.output
    records = read_feedback(log)
    assert records and {r["source"] for r in records} == {"simulated:rules"}
    out = tmp_path / "triples.jsonl"
    result = runner.invoke(
        cli, ["feedback", "export", str(log), "--as", "retriever", "--out", str(out)]
    )
    assert result.exit_code == 0 and out.read_text().count("\n") >= 1
    bad = runner.invoke(cli, ["feedback", "export", str(log), "--as", "pickle", "--out", str(out)])
    assert bad.exit_code != 0 and "sft, retriever, reward" in str(bad.exception)
    for args, message in [
        (["view", str(tmp_path / "nope")], "not an evaluation run"),
        (["view", str(run_dir), "--host", "0.0.0.0"], "refusing to bind"),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code != 0 and message in str(result.exception)


def test_sleuth_view_serves_the_runs(run_dir: Path, hotpot_bm25_path: Path, tmp_path: Path) -> None:
    """The real command in a real process: it starts, serves, and writes nothing into the run."""
    import os
    import subprocess
    import sys
    import time

    from conftest import free_port

    before = _digest(run_dir)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
    command = [sys.executable, "-m", "sleuth.cli", "view", str(run_dir), "--port", str(port)]
    command += ["--index", str(hotpot_bm25_path), "--model", "packaged"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, page = time.monotonic() + 30, None
        while time.monotonic() < deadline and page is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read()
                time.sleep(0.2)
        assert page is not None and page.status_code == 200
        assert "Replay is off" not in page.text  # --index and --model turn it on
    finally:
        process.terminate()
        stderr = process.communicate(timeout=10)[1]
    assert f"feedback log {run_dir.parent / 'feedback.jsonl'}" in " ".join(stderr.split())
    assert _digest(run_dir) == before


def _json_policy(second_query: str | None = None):
    """The tag policy's behaviour as OpenAI tool calls with deterministic call ids."""
    from sleuth.llm.base import ToolCall

    def act(messages: list[dict]) -> Completion:
        tools = [m for m in messages if m["role"] == "tool"]
        question = str(messages[1]["content"])
        if not tools:
            call = ToolCall("call_0", "search", {"query": question})
        elif len(tools) == 1:
            titles = re.findall(r"\(id: [^)]*\) ([^\n]+)", str(tools[0]["content"]))
            call = ToolCall("call_1", "search", {"query": second_query or titles[0]})
        else:
            titles = re.findall(r"\(id: [^)]*\) ([^\n]+)", str(tools[-1]["content"]))
            call = ToolCall("call_2", "answer", {"answer": titles[0]})
        return Completion("", tool_calls=[call], usage=Usage(50, 10))

    return act


def test_replay_in_the_json_tool_call_format(hotpot_bm25) -> None:
    config = AgentConfig(action_format="json", actions=("search", "open", "answer"), top_k=3)
    question = "Which magazine was started first Arthur's Magazine or First for Women?"
    parent = asyncio.run(Agent(ScriptedLLM(_json_policy()), hotpot_bm25, config).run(question))
    assert [s.action for s in parent.steps] == ["search", "search", "answer"]
    better = "First for Women magazine"
    fresh_llm, fork_llm = ScriptedLLM(_json_policy(better)), ScriptedLLM(_json_policy())
    fresh = asyncio.run(Agent(fresh_llm, hotpot_bm25, config).run(question))
    fork = asyncio.run(replay(parent, Edit("query", 1, better), fork_llm, hotpot_bm25))
    assert fork_llm.calls == fresh_llm.calls[2:]
    assert [(s.action, s.argument, [h.id for h in s.hits]) for s in fork.steps] == [
        (s.action, s.argument, [h.id for h in s.hits]) for s in fresh.steps
    ]
    assert json.loads(
        fork.steps[1].model_output.removeprefix("<tool_call>").removesuffix("</tool_call>")
    ) == {"name": "search", "arguments": {"query": better}}


def test_shadow_users_better_queries_replay_into_sft_episodes(
    run_dir: Path, hotpot_bm25, tmp_path: Path
) -> None:
    from sleuth.view.simulate import simulate

    log = tmp_path / "feedback.jsonl"
    counts = asyncio.run(
        simulate(run_dir, log, None, method="agent", agent=ScriptedLLM(policy), engine=hotpot_bm25)
    )
    queries = [r for r in read_feedback(log) if r["kind"] == "query"]
    assert counts["forks"] == len(queries) >= 1 and all(r["fork_id"] for r in queries)
    assert export(log, "sft", tmp_path / "sft.jsonl", keep_all=True) == len(queries)
    forks = {t.episode_id: t for t in TrajectoryLog(tmp_path / "sft.jsonl").read()}
    for record in queries:
        fork = forks[record["fork_id"]]
        assert fork.steps[record["step"]].argument == record["better_query"]
        assert fork.metadata["simulated"] == "simulated:rules"
    kept = export(log, "sft", tmp_path / "correct.jsonl")  # only forks that end correct
    from sleuth.metrics import cover_exact_match

    assert kept == sum(
        cover_exact_match(t.answer, t.metadata["gold_answers"]) for t in forks.values()
    )


def test_every_viewer_response_carries_the_policy_and_a_foreign_host_is_refused(
    run_dir: Path, tmp_path: Path
) -> None:
    """Issue 33 items 7 and 4: pages, error pages, 404s, static files and refusals all carry the
    Content-Security-Policy and nosniff; a rebinding Host is a 421, a foreign Origin a 403."""
    state = ViewerState(load_runs([run_dir]), tmp_path / "feedback.jsonl")
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        replies = {
            "page": http.get("/"),
            "error page": http.get("/compare", params={"question_id": "no such question"}),
            "404": http.get("/no/such/page"),
            "static 404": http.get("/static/missing.css"),
            "static": http.get("/static/viewer.css"),
            "405": http.post("/"),
            "foreign host": http.get("/", headers={"Host": "evil.example"}),
            "foreign origin": http.post(
                "/feedback", data={"token": state.token}, headers={"Origin": "http://evil.example"}
            ),
        }
        assert replies["error page"].status_code == 400 and replies["404"].status_code == 404
        assert replies["static"].status_code == 200
        assert replies["foreign host"].status_code == 421
        assert replies["foreign origin"].status_code == 403
        for name, reply in replies.items():
            assert "script-src 'self'" in reply.headers.get("content-security-policy", ""), name
            assert reply.headers.get("x-content-type-options") == "nosniff", name
        assert len(replies["page"].headers.get_list("content-security-policy")) == 1


def test_the_viewer_leaves_the_process_logging_alone(run_dir: Path, tmp_path: Path) -> None:
    """Litestar's default logging config puts an INFO handler on the root logger: every
    library's log line then reached a command's output (a `search --json` printed after a
    viewer had started in the same process was no longer JSON)."""
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    state = ViewerState(load_runs([run_dir]), tmp_path / "feedback.jsonl")
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/").status_code == 200
    assert (list(root.handlers), root.level) == before


def test_the_links_read_says_which_name_linked_each_document(
    hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    """A links episode's final read marks each linked document with the name whose exact-title
    search found it (the pipeline's ``links.names``), escaped like every other text."""
    from dataclasses import replace

    from view_support import SETTINGS, make_run, view_episode

    run_dir = make_run(hotpot_bm25_path, tmp_path / "links-run", n=6,
                       settings=replace(SETTINGS, methods=["links"]))  # fmt: skip
    episodes = load_runs([run_dir])["links-run"].episodes.values()
    linked = [e for e in episodes if (e.trajectory.metadata.get("links") or {}).get("names")]
    assert linked  # some of the 6 questions name a document
    episode = min(linked, key=lambda e: e.question_id)
    names = episode.trajectory.metadata["links"]["names"]
    page = view_episode(run_dir, episode.id)
    read = set(episode.trajectory.metadata["read"])
    assert read & set(names)
    for doc_id, name in names.items():
        if doc_id in read:
            assert f"linked by “{escape(name)}”" in page
    evil = view_episode(run_dir, "evil-1::links::s0")
    assert "<script>alert" not in evil
