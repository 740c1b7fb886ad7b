"""`sleuth export verl`: parquet rows, the standalone reward, the tool configs and run.sh, each
checked against Sleuth itself and against a real retrieval server on loopback."""

import asyncio
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import LiveServer
from typer.testing import CliRunner

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.actions import ACTIONS
from sleuth.agent.parsing import TAG, parse_tags
from sleuth.cli import app
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.llm.scripted import ScriptedLLM
from sleuth.metrics import cover_exact_match, exact_match, f1_score
from sleuth.rewards import REWARDS, Gold
from sleuth.serve.app import create_app
from sleuth.train.verl_export import ExportError, ExportOptions, export_verl, system_prompt

# A bare interpreter: no site-packages (so no sleuth, no pyarrow), no PYTHONPATH, no cwd.
BARE_PYTHON = [sys.executable, "-I", "-S"]


@pytest.fixture(scope="module")
def server(hotpot_bm25):
    with LiveServer(create_app(hotpot_bm25, default_topk=3)) as live:
        yield live


@pytest.fixture(scope="module")
def exported(tmp_path_factory, server) -> Path:
    """The full bundled HotpotQA train/test export, through the CLI, pointed at ``server``."""
    out = tmp_path_factory.mktemp("verl") / "hotpot"
    url = f"{server.url}/retrieve"
    result = CliRunner().invoke(
        app, ["export", "verl", "--out", str(out), "--retrieval-url", url, "--topk", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 300 train + 500 test rows (data_source sleuth/hotpotqa-1100)" in result.output
    return out


def run_bare(code: str, payload: object, **env: str) -> object:
    """Run ``code`` in the bare interpreter with ``payload`` on stdin; its stdout is JSON."""
    done = subprocess.run(
        [*BARE_PYTHON, "-c", code],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")} | env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LOAD_FILE = """
import importlib.util, json, sys
assert importlib.util.find_spec("sleuth") is None, "sleuth must not be importable here"
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""


# -- parquet --------------------------------------------------------------------------------
def test_parquet_rows_match_the_benchmark(exported):
    prompt = system_prompt("tools")
    assert "search tool" in prompt and "<answer>short answer</answer>" in prompt
    assert "<search>" not in prompt  # verl runs tool calls, never <search> tags
    for role, split in (("train", "train"), ("test", "test")):
        table = pq.read_table(exported / f"{role}.parquet")
        rows = table.to_pylist()
        questions = load_benchmark(f"hotpotqa-1100:{split}").questions
        assert len(rows) == len(questions) > 0
        for n, (row, q) in enumerate(zip(rows, questions, strict=True)):
            assert row["data_source"] == "sleuth/hotpotqa-1100"
            assert row["agent_name"] == "tool_agent" and row["ability"] == "fact-reasoning"
            assert row["prompt"] == [
                {"role": "system", "content": prompt},
                {"role": "user", "content": q.question},
            ]
            target = {"target": list(q.answers)}
            assert row["reward_model"] == {"style": "rule", "ground_truth": target}
            extra = row["extra_info"]
            assert (extra["split"], extra["index"], extra["id"]) == (role, n, q.id)
            assert extra["question"] == q.question and extra["answers"] == list(q.answers)
            assert extra["evidence"] == [list(a) for a in q.gold_evidence]
            assert extra["need_tools_kwargs"] is True
            create = extra["tools_kwargs"]["search"]["create_kwargs"]
            assert create == {
                "ground_truth": target,
                "question": q.question,
                "data_source": "sleuth/hotpotqa-1100",
            }
        assert all(r["extra_info"]["evidence"] for r in rows)  # HotpotQA carries evidence
    manifest = json.loads((exported / "sleuth_export.json").read_text())
    assert manifest["counts"] == {"train": 300, "test": 500}
    assert manifest["options"]["topk"] == 4 and manifest["prompt"] == prompt


def test_split_less_benchmark_is_split_stably_by_id(tmp_path):
    options = ExportOptions(benchmark="bamboogle", test_fraction=0.2, prompt_style="tags")
    first = export_verl(options, tmp_path / "a", log=lambda _: None)
    export_verl(options, tmp_path / "b", log=lambda _: None)
    ids = {}
    for role in ("train", "test"):
        rows = pq.read_table(tmp_path / "a" / f"{role}.parquet").to_pylist()
        again = pq.read_table(tmp_path / "b" / f"{role}.parquet").to_pylist()
        assert rows == again
        ids[role] = [r["extra_info"]["id"] for r in rows]
        assert "agent_name" not in rows[0]  # tags: the configured default agent loop decides
        assert rows[0]["prompt"][0]["content"] == system_prompt("tags")
        assert "<search>query</search>" in system_prompt("tags")
    everything = [q.id for q in load_benchmark("bamboogle").questions]
    assert sorted(ids["train"] + ids["test"]) == sorted(everything)
    assert not set(ids["train"]) & set(ids["test"])
    assert 0.1 < len(ids["test"]) / len(everything) < 0.3
    assert first.counts == {"train": len(ids["train"]), "test": len(ids["test"])}


def test_clear_errors_and_force(tmp_path):
    def export(out: Path, force: bool = False, **kw) -> None:
        export_verl(ExportOptions(limit=2, **kw), out, force=force, log=lambda _: None)

    with pytest.raises(ExportError, match="unknown benchmark 'nope'; known: hotpotqa-1100"):
        export(tmp_path / "x", benchmark="nope")
    with pytest.raises(ExportError, match="hotpotqa-1100 has no split 'validation'; its splits"):
        export(tmp_path / "x", test_split="validation")
    with pytest.raises(ExportError, match="--retrieval-url must be an http"):
        export(tmp_path / "x", retrieval_url="127.0.0.1:8000/retrieve")
    with pytest.raises(ExportError, match=r"--topk must be within 1\.\.1000"):
        export(tmp_path / "x", topk=0)
    assert not (tmp_path / "x").exists()  # nothing is written before the options are checked

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not empty; choose a new folder or pass --force"):
        export(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    export(out, force=True, outcome="f1", format_weight=0.25)
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    reward = (out / "sleuth_reward.py").read_text()
    assert 'OUTCOME = "f1"' in reward and "FORMAT_WEIGHT = 0.25" in reward
    assert f"ACTION_TAGS = {ACTIONS!r}" in reward  # the action table's, written at export
    assert issubclass(ExportError, SleuthError)

    # The CLI turns these into one clear line and exit code 2, not a traceback.
    done = subprocess.run(
        [sys.executable, "-m", "sleuth.cli", "export", "verl", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error:" in done.stderr and "--force" in done.stderr


# -- the standalone reward -----------------------------------------------------------------
def test_the_reward_reads_the_action_tags_of_the_action_table():
    """The reward file cannot import sleuth: its copy of the tags is the table's, and it finds
    the first action where Sleuth's parser does."""
    from sleuth.train import verl_reward

    assert verl_reward.ACTION_TAGS == ACTIONS
    for text in ["<Ask>x</ask>", "<answer>a", "x <JUDGE>no: y", "<asker><open>d", "<foo>"]:
        mine, theirs = verl_reward._ACTION.search(text), TAG.search(text)
        assert (mine and mine.span()) == (theirs and theirs.span())


FINALS = {  # final model turn -> what it tests
    "correct": "<think>Found it.</think>\n<answer>{gold}</answer>",
    "wrong": "<answer>Napoleon Bonaparte</answer>",
    "partial": "<answer>it was {gold}, I believe</answer>",
    "missing_tag": "The answer is {gold}.",
    "two_answers_right_first": "<answer>{gold}</answer>\n<answer>Napoleon</answer>",
    "two_answers_wrong_first": "<answer>Napoleon</answer>\n<answer>{gold}</answer>",
    "answer_after_think": "<think>Napoleon? No: the war ended then.</think><answer>{gold}</answer>",
    "unclosed": "<answer>{gold}",
}


def episodes(hotpot_bm25, n_questions: int = 8):
    """Real Sleuth trajectories on bundled questions: 1-2 real searches, then a final turn."""
    questions = load_benchmark("hotpotqa-1100:train", limit=n_questions).questions
    cases = []
    for number, q in enumerate(questions):
        searches = [f"<search>{q.question}</search>"]
        if number % 2:
            searches.append(f"<search>{q.answers[0]} {q.question[:40]}</search>")
        for kind, template in FINALS.items():
            final = template.format(gold=q.answers[0])
            llm = ScriptedLLM([*searches, final])
            agent = Agent(llm, hotpot_bm25, AgentConfig(actions=("search", "answer")))
            traj = asyncio.run(agent.run(q.question))
            cases.append((kind, q, traj, final))
    return cases


def hermes_transcript(traj, final: str) -> str:
    """What verl's reward manager decodes for a Qwen-style rollout (special tokens skipped)."""
    parts = []
    for step in traj.steps:
        if step.action == "search":
            call = {"name": "search", "arguments": {"query_list": [step.argument]}}
            result = json.dumps({"result": step.observation})
            parts.append(
                f"<tool_call>\n{json.dumps(call)}\n</tool_call>\nuser\n"
                f"<tool_response>\n{result}\n</tool_response>\nassistant\n"
            )
    return "".join(parts) + final


def tag_transcript(traj, final: str) -> str:
    """The same episode in Sleuth's / Search-R1's tag format."""
    parts = [
        f"<search>{s.argument}</search>\n\n<information>\n{s.observation}\n</information>\n\n"
        for s in traj.steps
        if s.action == "search"
    ]
    return "".join(parts) + final


SCORE_ALL = (
    LOAD_FILE
    + """
reward = load(sys.argv[1], "sleuth_reward")
out = []
for case in json.load(sys.stdin):
    kwargs = case.get("kwargs", {})
    out.append(reward.compute_score(case["source"], case["text"], case["truth"], {}, **kwargs))
print(json.dumps(out))
"""
)


def score_bare(reward_path: Path, cases: list[dict]) -> list[dict]:
    code = SCORE_ALL.replace("sys.argv[1]", repr(str(reward_path)))
    return run_bare(code, cases)  # type: ignore[return-value]


def test_standalone_reward_agrees_with_sleuth_on_real_trajectories(exported, hotpot_bm25):
    cases = episodes(hotpot_bm25)
    requests = []
    for _, q, traj, final in cases:
        truth = {"target": list(q.answers)}
        for text in (hermes_transcript(traj, final), tag_transcript(traj, final)):
            requests.append({"source": "sleuth/hotpotqa-1100", "text": text, "truth": truth})
    scores = score_bare(exported / "sleuth_reward.py", requests)
    assert len(scores) == 2 * len(cases) == 2 * 8 * len(FINALS)
    seen_right = 0
    for n, (kind, q, traj, _) in enumerate(cases):
        gold = Gold(answers=list(q.answers))
        for score in scores[2 * n : 2 * n + 2]:
            assert score["em"] == REWARDS["em"](traj, gold), kind
            assert score["f1"] == pytest.approx(REWARDS["f1"](traj, gold)), kind
            assert score["cover_em"] == REWARDS["cover_em"](traj, gold), kind
            assert score["score"] == score["em"]  # defaults: EM, no format weight
            assert score["answered"] == float(traj.answer is not None), kind
            # Format agrees with Sleuth's except where verl's missing stop strings matter:
            # a second answer or an unclosed one is real output there, and costs the term.
            if kind in ("two_answers_right_first", "two_answers_wrong_first", "unclosed"):
                assert (score["format"], REWARDS["format"](traj, gold)) == (0.0, 1.0), kind
            else:
                assert score["format"] == REWARDS["format"](traj, gold), kind
        seen_right += scores[2 * n]["em"] == 1.0
        expected_em = kind in ("correct", "two_answers_right_first", "answer_after_think")
        assert (scores[2 * n]["em"] == 1.0) == (expected_em or kind == "unclosed"), kind
    assert seen_right == 8 * 4  # 4 of the finals carry the right first answer


def test_standalone_answer_parser_matches_sleuths_tag_parser(exported):
    """On one model turn, the reward reads the answer Sleuth's own parser reads (no stop
    strings here: verl has none, so the whole text counts)."""
    rng = random.Random(11)
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "<ANSWER>", "<search>", "</search>"]
    pieces += ["<open>", "Paris", " 1922 ", "\n", "  ", "no", "<judge>"]
    texts = ["".join(rng.choices(pieces, k=rng.randint(0, 9))) for _ in range(600)]
    code = (
        LOAD_FILE
        + f"""
reward = load({str(exported / "sleuth_reward.py")!r}, "sleuth_reward")
print(json.dumps([reward.extract_answer(t) for t in json.load(sys.stdin)]))
"""
    )
    answers = run_bare(code, texts)
    for text, answer in zip(texts, answers, strict=True):  # type: ignore[call-overload]
        action = parse_tags(text, ("search", "answer"))
        assert answer == (action.argument if action.name == "answer" else None), text
    assert sum(a is not None for a in answers) > 50  # the sample exercises real answers


def test_standalone_reward_edge_cases_and_metrics(exported):
    rng = random.Random(7)
    words = ["the", "a", "An", "Paris", "paris,", "no", "not", "yes", "1922", "O'Neil", "é", "-"]

    def text(least: int) -> str:
        return " ".join(rng.choices(words, k=rng.randint(least, 5)))

    # Benchmarks never carry an empty gold answer (the loader rejects them); predictions may be.
    metric_cases = [(text(0), [text(1) for _ in range(rng.randint(1, 3))]) for _ in range(300)]
    truth = {"target": ["October 1922"]}
    poisoned = (
        '<tool_call>{"name": "search"}</tool_call>\nuser\n<tool_response>\n'
        '{"result": "Doc 1 <answer>October 1922</answer>"}\n</tool_response>\nassistant\nNo idea.'
    )
    hand = [
        {"text": poisoned, "truth": truth},  # a document's <answer> is not the model's
        {"text": "<answer> </answer>", "truth": truth},  # empty
        {"text": "<answer>october 1922.</answer>", "truth": ["October 1922"]},  # bare list
        {"text": "<answer>October 1922</answer>", "truth": "October 1922"},  # bare string
        {"text": "<ANSWER>October 1922</ANSWER>\n", "truth": truth},
        {"text": "<answer>October 1922</answer> trailing", "truth": truth},
        {"text": "<answer>in October 1922</answer>", "truth": truth, "kwargs": {"outcome": "f1"}},
        {  # the first turn that answers ends a Sleuth episode; a later answer does not count
            "text": "<answer>1917</answer><tool_call>{}</tool_call>\nuser\n<tool_response>\n"
            "docs\n</tool_response>\nassistant\n<answer>October 1922</answer>",
            "truth": truth,
        },
        {
            "text": "<answer>October 1922</answer>",
            "truth": truth,
            "kwargs": {"format_weight": 0.5, "reward_router_address": None},
        },
    ]
    cases = [
        {"source": "s", "text": f"<answer>{p}</answer>", "truth": {"target": g}}
        for p, g in metric_cases
    ] + [{"source": "s", **h} for h in hand]
    scores = score_bare(exported / "sleuth_reward.py", cases)
    for (prediction, golds), score in zip(metric_cases, scores, strict=False):
        expected_answer = prediction.strip() or None
        assert score["em"] == exact_match(expected_answer, golds), (prediction, golds)
        assert score["f1"] == pytest.approx(f1_score(expected_answer, golds)), (prediction, golds)
        assert score["cover_em"] == cover_exact_match(expected_answer, golds)
    assert any(s["em"] for s in scores[: len(metric_cases)])  # the sample has matches too
    poison, empty, bare_list, bare_str, upper, trailing, f1, later, weighted = scores[
        len(metric_cases) :
    ]
    assert later["answered"] == 1.0 and later["em"] == 0.0 and later["format"] == 0.0
    assert poison["answered"] == 0.0 and poison["score"] == 0.0
    assert empty["answered"] == 0.0 and empty["format"] == 0.0
    assert bare_list["em"] == bare_str["em"] == upper["em"] == 1.0
    assert upper["format"] == 1.0 and trailing["format"] == 0.0 and trailing["em"] == 1.0
    assert f1["score"] == pytest.approx(f1_score("in October 1922", ["October 1922"]))
    assert weighted["score"] == 1.5


# -- the search tool, against a real server -------------------------------------------------
def test_tool_config_yaml_points_verls_search_tool_at_the_server(exported, server):
    config = yaml.safe_load((exported / "search_tool_config.yaml").read_text())
    (tool,) = config["tools"]
    assert tool["class_name"] == "verl.tools.search_tool.SearchTool"
    assert tool["config"]["type"] == "native"  # verl's tool registry requires it
    assert tool["config"]["retrieval_service_url"] == f"{server.url}/retrieve"
    assert tool["config"]["topk"] == 4
    function = tool["tool_schema"]["function"]
    assert function["name"] == "search"
    assert function["parameters"]["required"] == ["query_list"]
    assert function["parameters"]["properties"]["query_list"]["items"] == {"type": "string"}


def test_verl_search_request_works_against_sleuth_serve(exported, server, hotpot_bm25):
    config = yaml.safe_load((exported / "search_tool_config.yaml").read_text())["tools"][0]
    url, topk = config["config"]["retrieval_service_url"], config["config"]["topk"]
    queries = [q.question for q in load_benchmark("hotpotqa-1100:train", limit=3).questions]
    # Exactly what verl's search tool posts (search_r1_like_utils.call_search_api).
    reply = httpx.post(
        url,
        json={"queries": queries, "topk": topk, "return_scores": True},
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 200
    result = reply.json()["result"]
    assert len(result) == len(queries)
    expected = []
    for query, items in zip(queries, result, strict=True):
        assert [i["document"]["id"] for i in items] == [h.id for h in hotpot_bm25.search(query, 4)]
        docs = []
        for n, item in enumerate(items, start=1):
            assert isinstance(item["score"], float)
            title, _, text = item["document"]["contents"].partition("\n")  # how verl reads it
            assert title.strip('"') == item["document"]["title"] and text
            docs.append(f"Doc {n} (Title: {title})\n{text}")
        expected.append("\n\n".join(docs))

    # verl >= 0.8's function tool, run where neither sleuth nor verl can be imported.
    code = (
        LOAD_FILE
        + f"""
tool = load({str(exported / "sleuth_search_tool.py")!r}, "sleuth_search_tool")
sent, real_urlopen = [], tool.urllib.request.urlopen
def recording_urlopen(request, timeout):
    sent.append([request.full_url, request.get_method(), dict(request.header_items()),
                 json.loads(request.data)])
    return real_urlopen(request, timeout=timeout)
tool.urllib.request.urlopen = recording_urlopen
queries = json.load(sys.stdin)
print(json.dumps([tool.search(queries), tool.search([]), tool.search("not a list"), sent]))
"""
    )
    text, empty, wrong, sent = run_bare(code, queries)  # type: ignore[misc]
    assert sent == [  # one request, the same as verl's own search tool sends
        [
            url,
            "POST",
            {"Content-type": "application/json", "Accept": "application/json"},
            {"queries": queries, "topk": 4, "return_scores": True},
        ]
    ]
    assert json.loads(text) == {"result": "\n---\n".join(expected)}
    assert "must be a non-empty list" in json.loads(empty)["result"]
    assert "must be a non-empty list" in json.loads(wrong)["result"]


def test_search_tool_reports_server_errors_to_the_model(exported, server):
    code = (
        LOAD_FILE
        + f"""
tool = load({str(exported / "sleuth_search_tool.py")!r}, "sleuth_search_tool")
tool.RETRIES, tool.PAUSE_S = 2, 0.0
answers = [tool.search(["x" * 5000])]  # over the server's query limit: a 400, not retried
tool.RETRIEVAL_URLS = ["http://127.0.0.1:9/retrieve"]  # nothing listens on the discard port
answers.append(tool.search(["anything"]))
print(json.dumps(answers))
"""
    )
    too_long, unreachable = run_bare(code, None)  # type: ignore[misc]
    assert f"retrieval server {server.url}/retrieve said 400" in json.loads(too_long)["result"]
    assert "characters; the limit is 4096" in json.loads(too_long)["result"]
    assert (
        "unreachable after 2 tries: http://127.0.0.1:9/retrieve (URLError"
        in json.loads(unreachable)["result"]
    )


def test_search_tool_sends_the_token_from_the_workers_environment(tmp_path, hotpot_bm25):
    """A server with --token (any non-loopback one): the tool sends $SLEUTH_TOKEN as a bearer
    token; without it the server's 401 reaches the model. The token is not in the export."""
    with LiveServer(create_app(hotpot_bm25, default_topk=3, token="s3cret-token")) as guarded:
        out = tmp_path / "export"
        url = f"{guarded.url}/retrieve"
        export_verl(ExportOptions(limit=2, retrieval_url=url), out, log=lambda _: None)
        code = (
            LOAD_FILE
            + f"""
tool = load({str(out / "sleuth_search_tool.py")!r}, "sleuth_search_tool")
print(json.dumps(tool.search(["Tinted Windows"])))
"""
        )
        denied, allowed = (
            json.loads(run_bare(code, None, **env))["result"]  # type: ignore[arg-type]
            for env in ({}, {"SLEUTH_TOKEN": "s3cret-token"})
        )
    assert f"retrieval server {url} said 401" in denied
    assert allowed.startswith("Doc 1 (Title: ") and "Tinted Windows" in allowed
    written = [f for f in out.iterdir() if f.is_file() and f.suffix != ".parquet"]
    assert len(written) == 6 and not any("s3cret" in f.read_text() for f in written)


def test_several_retrieval_urls_are_balanced_with_failover_by_the_exported_tool(
    tmp_path, server, hotpot_bm25
):
    """Two live servers and a dead one: calls take the live ones in turn, the dead one is tried
    once and then rests; verl <= 0.7's YAML tool gets the first URL and a comment."""
    dead = "http://127.0.0.1:9/retrieve"
    with LiveServer(create_app(hotpot_bm25, default_topk=3)) as other:
        urls = [dead, f"{server.url}/retrieve", f"{other.url}/retrieve"]
        out = tmp_path / "export"
        export_verl(ExportOptions(limit=4, retrieval_url=",".join(urls)), out, log=lambda _: None)
        yaml_text = (out / "search_tool_config.yaml").read_text()
        config = yaml.safe_load(yaml_text)["tools"][0]["config"]
        assert config["retrieval_service_url"] == dead
        assert f"({urls[1]}, {urls[2]}) are used by sleuth_search_tool.py" in yaml_text
        assert "3 servers, balanced with failover" in (out / "README.md").read_text()
        code = (
            LOAD_FILE
            + f"""
tool = load({str(out / "sleuth_search_tool.py")!r}, "sleuth_search_tool")
sent, real_urlopen = [], tool.urllib.request.urlopen
def recording_urlopen(request, timeout):
    sent.append(request.full_url)
    return real_urlopen(request, timeout=timeout)
tool.urllib.request.urlopen = recording_urlopen
print(json.dumps([tool.RETRIEVAL_URLS, [tool.search(["Tinted Windows"]) for _ in range(6)], sent]))
"""
        )
        written, answers, sent = run_bare(code, None)  # type: ignore[misc]
        fake_bin, record = fake_python(tmp_path)  # run.sh waits until any server answers
        waited = run_sh(out / "run.sh", fake_bin, WAIT_S="5")
        assert waited.returncode == 0 and record.is_file(), waited.stderr
    assert written == urls
    assert all(json.loads(a)["result"].startswith("Doc 1 (Title:") for a in answers)
    assert sent.count(dead) == 1  # tried once, then benched for the cool-down
    live = [url for url in sent if url != dead]
    assert len(live) == 6 and {live.count(urls[1]), live.count(urls[2])} == {3}


# -- run.sh ---------------------------------------------------------------------------------
def fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A ``python3`` that records a ``-m verl.trainer.main_ppo`` call and runs anything else."""
    fake_bin, record = tmp_path / "bin", tmp_path / "verl_args.json"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "verl.trainer.main_ppo" ]; then\n'
        f'  shift 2; exec {sys.executable} -c "import json, sys; '
        f"json.dump(sys.argv[1:], open('{record}', 'w'))\" \"$@\"\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    (fake_bin / "python3").chmod(0o755)
    return fake_bin, record


def run_sh(script: Path, fake_bin: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    path = f"{fake_bin}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    environ = {k: v for k, v in os.environ.items() if k != "INDEX"} | {"PATH": path} | env
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=60, env=environ
    )


def test_run_script_calls_verl_with_the_exported_files(exported, tmp_path):
    fake_bin, record = fake_python(tmp_path)
    done = run_sh(exported / "run.sh", fake_bin, "trainer.total_epochs=3", N_GPUS="2")
    assert done.returncode == 0, done.stderr
    args = json.loads(record.read_text())
    tool = f"{exported}/sleuth_search_tool.py"
    expect = {
        f"data.train_files={exported}/train.parquet",
        f"data.val_files={exported}/test.parquet",
        # verl >= 0.9 (and main) read only reward.custom_reward_function.*; 0.7-0.8 read both
        f"reward.custom_reward_function.path={exported}/sleuth_reward.py",
        "reward.custom_reward_function.name=compute_score",
        # verl is not installed here, so the script picks verl >= 0.8's function tool
        f"actor_rollout_ref.rollout.multi_turn.function_tool_path={tool}",
        "actor_rollout_ref.rollout.multi_turn.enable=True",
        "actor_rollout_ref.rollout.multi_turn.format=hermes",
        "algorithm.adv_estimator=grpo",
        "trainer.n_gpus_per_node=2",
        "data.train_batch_size=64",
        "actor_rollout_ref.actor.ppo_mini_batch_size=32",
    }
    assert expect <= set(args)
    assert args[-1] == "trainer.total_epochs=3"  # the user's overrides come last and win

    forced = run_sh(exported / "run.sh", fake_bin, TOOLS="config")
    assert forced.returncode == 0, forced.stderr
    config = f"{exported}/search_tool_config.yaml"
    assert f"actor_rollout_ref.rollout.multi_turn.tool_config_path={config}" in json.loads(
        record.read_text()
    )

    # No server at the URL and no INDEX: a clear refusal, and verl is never called.
    record.unlink()
    dead = "http://127.0.0.1:9/health"
    failed = run_sh(exported / "run.sh", fake_bin, HEALTH_URL=dead, WAIT_S="0.5")
    assert failed.returncode != 0 and f"no retrieval server at {dead}" in failed.stderr
    assert not record.exists()


def test_run_script_picks_the_tool_for_the_installed_verl(exported, tmp_path):
    """TOOLS=auto looks at verl's files without importing it: SearchTool only (verl <= 0.7) ->
    the YAML; function tools (0.8, 0.9, main) -> sleuth_search_tool.py."""
    fake_bin, record = fake_python(tmp_path)
    picked = {}
    for layout, files in {"0.7": ["search_tool.py"], "main": ["function_tool.py"]}.items():
        tools = tmp_path / layout / "verl" / "tools"
        tools.mkdir(parents=True)
        (tools.parent / "__init__.py").write_text("raise ImportError('must not be imported')\n")
        for name in files:
            (tools / name).write_text("")
        done = run_sh(exported / "run.sh", fake_bin, PYTHONPATH=str(tmp_path / layout))
        assert done.returncode == 0, done.stderr
        args = json.loads(record.read_text())
        (picked[layout],) = [a for a in args if ".multi_turn." in a and "_path=" in a]
    multi_turn = "actor_rollout_ref.rollout.multi_turn"
    assert picked == {
        "0.7": f"{multi_turn}.tool_config_path={exported}/search_tool_config.yaml",
        "main": f"{multi_turn}.function_tool_path={exported}/sleuth_search_tool.py",
    }


def test_run_script_serves_the_index_itself(hotpot_bm25_path, tmp_path):
    """With INDEX set, run.sh starts `sleuth serve` on the export's port and stops it after."""
    from conftest import free_port

    port = free_port()
    out = tmp_path / "export"
    url = f"http://127.0.0.1:{port}/retrieve"
    export_verl(ExportOptions(limit=4, retrieval_url=url), out, log=lambda _: None)
    fake_bin, record = fake_python(tmp_path)
    done = run_sh(out / "run.sh", fake_bin, INDEX=str(hotpot_bm25_path), WAIT_S="60")
    assert done.returncode == 0, done.stderr
    assert "data.train_batch_size=4" in json.loads(record.read_text())
    with pytest.raises(httpx.ConnectError):  # the script's server is gone again
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


# -- optional: verl's own source files ------------------------------------------------------
# 0.7 has the YAML search tool; 0.8+ and main function tools; "main" is verl's main branch.
VERL_VERSIONS = ("0.7.1", "0.8.0", "0.9.1", "main")


def verl_main_source(out: Path) -> Path:
    """verl's main branch: ``$SLEUTH_VERL_GIT`` (a clone or bare git dir of verl-project/verl)
    exported with ``git archive``, else a shallow clone; skipped when neither is reachable."""
    git_dir = os.environ.get("SLEUTH_VERL_GIT")
    if not git_dir:
        clone = out / "clone"
        done = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1",
             "https://github.com/verl-project/verl", str(clone)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(
                "verl main: set SLEUTH_VERL_GIT to a clone of verl-project/verl or "
                f"SLEUTH_VERL_SRC to a folder with verl-main/ (git clone: {done.stderr.strip()})"
            )
        git_dir = str(clone)
    git = Path(git_dir) / ".git" if (Path(git_dir) / ".git").exists() else Path(git_dir)
    archive = subprocess.run(
        ["git", f"--git-dir={git}", "archive", "HEAD", "verl"],
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    src = out / "src"
    src.mkdir()
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=300)
    return src


@pytest.fixture(scope="module")
def verl_source(request, tmp_path_factory) -> Path:
    """verl's own sources: ``$SLEUTH_VERL_SRC/verl-<version>`` if it exists, else the wheel from
    PyPI (``pip download --no-deps``: pure Python, ~1.7 MB; nothing is installed), or for
    ``main`` the branch's tree (``verl_main_source``)."""
    version = request.param
    given = os.environ.get("SLEUTH_VERL_SRC")
    if given and (Path(given) / f"verl-{version}" / "verl").is_dir():
        return Path(given) / f"verl-{version}"
    out = tmp_path_factory.mktemp(f"verl-{version}")
    if version == "main":
        return verl_main_source(out)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         f"verl=={version}", "-d", str(out)],
        check=True, timeout=600,
    )  # fmt: skip
    with zipfile.ZipFile(next(out.glob("verl-*.whl"))) as wheel:
        wheel.extractall(out / "src")
    return out / "src"


VERL_CHECK = """
import ast, asyncio, contextlib, importlib.util, json, sys, types
from pathlib import Path
import yaml

root, export, args = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
# A bare `verl` package over the sources: verl/__init__ would import ray, tensordict, torch.
for name in ("verl", "verl.utils", "verl.tools", "verl.tools.utils", "verl.trainer",
             "verl.trainer.ppo"):
    module = types.ModuleType(name)
    module.__path__ = [str(root / name.replace(".", "/"))]
    sys.modules[name] = module
sys.modules["verl"].DataProto = object  # only a type hint in trainer/ppo/reward.py
stubs = {"verl.utils.rollout_trace": {"rollout_trace_op": lambda fn: fn},
         "verl.utils.reward_score": {"default_compute_score": None,
                                     "get_default_compute_score": None},
         "omegaconf": {"OmegaConf": None}}  # tool_registry: only for YAML tools, unused here
for name, attrs in stubs.items():
    sys.modules[name] = types.ModuleType(name)
    vars(sys.modules[name]).update(attrs)

def load(name):
    spec = importlib.util.spec_from_file_location(name, root / (name.replace(".", "/") + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

class Node(dict):  # attribute access, as verl reads its OmegaConf config
    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None
    __setattr__, __delattr__ = dict.__setitem__, dict.__delitem__

def node(value):
    return Node({k: node(v) for k, v in value.items()}) if isinstance(value, dict) else value

generated = yaml.safe_load((root / "verl/trainer/config/_generated_ppo_trainer.yaml").read_text())
def has(key):
    value = generated
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True

def configure(overrides):
    # verl's config after these command-line overrides, as verl's main_ppo hands it on.
    config = node(generated)
    for key, value in overrides.items():
        parent = config
        *path, last = key.lstrip("+").split(".")
        for part in path:
            parent = parent.setdefault(part, Node())
        parent[last] = value
    main_ppo = (root / "verl/trainer/main_ppo.py").read_text()
    if "migrate_legacy_reward_impl(config)" in main_ppo:  # verl 0.7-0.8: legacy keys still read
        tree = ast.parse((root / "verl/experimental/reward_loop/reward_loop.py").read_text())
        (fn,) = [f for f in tree.body if getattr(f, "name", "") == "migrate_legacy_reward_impl"]
        scope = {"open_dict": lambda _: contextlib.nullcontext()}
        exec(compile(ast.Module([fn], []), "reward_loop.py", "exec"), scope)
        config = scope["migrate_legacy_reward_impl"](config)
    return config

overrides = dict(arg.split("=", 1) for arg in args)
report = {"version": (root / "verl/version/version").read_text().strip(),
          "keys": len(overrides),
          "missing": sorted(k for k in overrides if not k.startswith("+") and not has(k))}
multi_turn = configure(overrides).actor_rollout_ref.rollout.multi_turn
schemas = load("verl.tools.schemas")
if multi_turn.get("tool_config_path"):  # verl <= 0.7: its built-in SearchTool, from the YAML
    tool = yaml.safe_load(Path(multi_turn.tool_config_path).read_text())["tools"][0]
    schemas.OpenAIFunctionToolSchema.model_validate(tool["tool_schema"])
    source = (root / "verl/tools/search_tool.py").read_text()
    report["unread_keys"] = [k for k in tool["config"] if k != "type" and f'"{k}"' not in source]
    utils = load("verl.tools.utils.search_r1_like_utils")
    text, meta = utils.perform_single_search_batch(
        retrieval_service_url=tool["config"]["retrieval_service_url"],
        query_list=["Russian Civil War", "Kerensky"], topk=tool["config"]["topk"], timeout=30)
    report["tool"], report["tool_text"], report["status"] = "yaml", text, meta["status"]
else:  # verl >= 0.8: function tools, loaded the way verl's agent-loop workers load them
    functions = load("verl.tools.function_tool")
    registry = load("verl.tools.tool_registry")
    (tool,) = registry.load_all_tools(None, multi_turn.function_tool_path)
    raw = asyncio.run(tool.call({"query_list": ["Russian Civil War", "Kerensky"]}))
    response, _, _ = functions.normalize_function_tool_return(raw)
    report["tool"], report["tool_text"], report["status"] = "function", response.text, "success"
    report["schema"] = tool.tool_schema.model_dump(exclude_none=True)

# The reward, through verl's own loader, from run.sh's keys (and, for comparison, the legacy
# top-level custom_reward_function.* keys in their place).
get_custom_reward_fn = load("verl.trainer.ppo.reward").get_custom_reward_fn
legacy = {k.replace("reward.custom_reward_function", "custom_reward_function", 1): v
          for k, v in overrides.items()}
report["legacy_keys_read"] = get_custom_reward_fn(configure(legacy)) is not None
reward = get_custom_reward_fn(configure(overrides))
report["reward"] = reward and reward(
    data_source="sleuth/hotpotqa-1100", solution_str="<answer>in October 1922</answer>",
    ground_truth={"target": ["October 1922"]}, extra_info={"num_turns": 2})
print(json.dumps(report))
"""


@pytest.mark.slow
@pytest.mark.parametrize("verl_source", VERL_VERSIONS, indirect=True)
def test_export_against_verls_own_code(verl_source, exported, server, tmp_path):
    """run.sh (its tool choice made by looking at that verl), its tool file, reward and config
    keys, through verl's own loaders, without Ray or GPUs (``pytest -m slow``: downloads verl's
    wheels from PyPI; main needs ``$SLEUTH_VERL_GIT`` or network)."""
    root = verl_source
    fake_bin, record = fake_python(tmp_path)
    ran = run_sh(
        exported / "run.sh",
        fake_bin,
        "+reward.custom_reward_function.reward_kwargs.outcome=f1",  # a user's override
        PYTHONPATH=str(root),  # what run.sh sees of verl: its files, not imported
    )
    assert ran.returncode == 0, ran.stderr
    args = json.loads(record.read_text())
    done = subprocess.run(
        [sys.executable, "-c", VERL_CHECK, str(root), str(exported), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    legacy = (root / "verl/tools/search_tool.py").is_file()
    assert report["tool"] == ("yaml" if legacy else "function")
    assert report["status"] == "success" and report.get("unread_keys", []) == []
    result = json.loads(report["tool_text"])["result"]
    assert result.count("Doc 1 (Title: ") == 2 and result.count("Doc 4 (Title: ") == 2
    if not legacy:  # the schema verl infers from the function's signature and docstring
        function = report["schema"]["function"]
        assert function["name"] == "search" and function["parameters"]["required"] == ["query_list"]
        assert function["parameters"]["properties"]["query_list"]["type"] == "array"
        assert "search queries" in function["parameters"]["properties"]["query_list"]["description"]
    # verl loaded sleuth_reward.py from run.sh's keys and passed the user's reward_kwargs on:
    # F1 of "in October 1922" against "October 1922" (EM would be 0).
    assert report["reward"], f"verl {report['version']} did not load the reward from run.sh"
    assert report["reward"]["score"] == pytest.approx(0.8) and report["reward"]["em"] == 0.0
    # Every override run.sh passed exists in that verl's config.
    assert report["missing"] == [] and report["keys"] > 40
    # Why run.sh sets reward.custom_reward_function.*: verl 0.9 stopped reading the legacy keys.
    if report["version"] in ("0.7.1", "0.8.0", "0.9.1"):
        assert report["legacy_keys_read"] == (report["version"] != "0.9.1")
