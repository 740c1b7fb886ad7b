"""Report rendering and run comparison on run folders built from real trajectories."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleuth.agent.trajectory import HitRef, Step, Trajectory
from sleuth.cli import app
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.evaluate.compare import compare_runs
from sleuth.evaluate.records import ResultLog, result_key, score_trajectory
from sleuth.evaluate.report import anchor, build_report, write_report
from sleuth.evaluate.runner import RunSettings, prepare_run_dir

EVIL = "<script>alert('x')</script>"


def _trajectory(question: BenchmarkQuestion, method: str, answer: str | None, hit_ids: list[str]):
    steps = []
    if hit_ids:
        steps.append(
            Step(
                index=0,
                prompt_delta=[],
                model_output=f"<search>{question.question}</search>",
                action="search",
                argument=question.question,
                hits=[HitRef(id=h, score=1.0, rank=i + 1) for i, h in enumerate(hit_ids)],
                observation=f"Doc text with markup {EVIL} <img src=x onerror=alert(1)>",
                prompt_tokens=100,
                completion_tokens=10,
            )
        )
    steps.append(
        Step(
            index=len(steps),
            prompt_delta=[],
            model_output=f"<answer>{answer}</answer>",
            action="answer",
            argument=answer or "",
            prompt_tokens=120,
            completion_tokens=5,
        )
    )
    return Trajectory(
        episode_id=result_key(question.id, method, 0),
        question=question.question,
        answer=answer,
        stop_reason="answered",
        steps=steps,
        seconds=1.5,
        metadata={"question_id": question.id, "method": method, "seed": 0},
    )


def make_run(folder: Path, questions, outcomes: dict[str, list[tuple[str | None, list[str]]]]):
    """A run folder exactly as the runner leaves it: config, trajectories, results."""
    settings = RunSettings(benchmark="hotpotqa-1100:test", methods=list(outcomes), seeds=[0])
    prepare_run_dir(folder, settings, [q.id for q in questions], None)
    log = ResultLog(folder / "results.jsonl")
    with (folder / "trajectories.jsonl").open("w", encoding="utf-8") as handle:
        for method, rows in outcomes.items():
            for question, (answer, hits) in zip(questions, rows, strict=True):
                trajectory = _trajectory(question, method, answer, hits)
                handle.write(trajectory.to_json() + "\n")
                log.append(score_trajectory(trajectory, question, method, 0))


@pytest.fixture(scope="module")
def questions():
    return load_benchmark("hotpotqa-1100:test", limit=4).questions


def gold_ids(question: BenchmarkQuestion) -> list[str]:
    return [item[0] for item in question.gold_evidence]


def test_report_json_and_html(tmp_path: Path, questions) -> None:
    q = questions
    outcomes = {
        # closed book: one right answer, one refusal, two wrong (one is a script injection)
        "closed_book": [(q[0].answers[0], []), ("I don't know", []), (EVIL, []), ("Paris", [])],
        # rag: full evidence for q0, q1 (one right, one wrong), half for q2, none for q3
        "rag": [
            (q[0].answers[0], gold_ids(q[0])),
            ("wrong", gold_ids(q[1])),
            (q[2].answers[0], gold_ids(q[2])[:1]),
            (None, ["doc0"]),
        ],
    }
    make_run(tmp_path, q, outcomes)
    json_path, html_path = write_report(tmp_path)

    report = json.loads(json_path.read_text())
    rag, closed = report["methods"]["rag"], report["methods"]["closed_book"]
    assert rag["episodes"] == closed["episodes"] == 4
    assert rag["metrics"]["em"]["mean"] == pytest.approx(0.5)
    assert closed["metrics"]["em"]["mean"] == pytest.approx(0.25)
    assert rag["metrics"]["evidence_recall"]["mean"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert closed["metrics"]["evidence_recall"]["mean"] == 0.0
    assert rag["factorised"]["counts"] == {
        "solved": 1,
        "misused": 1,
        "overcautious": 0,
        "refused": 1,  # no answer, evidence missing
        "hallucinated": 0,
        "unsupported_correct": 1,  # right with half the evidence
    }
    assert rag["factorised"]["search_sufficiency"] == 0.5
    assert rag["factorised"]["knowledge_utilisation"] == 0.5
    assert closed["factorised"]["counts"]["refused"] == 1
    # all four lack evidence: 1 right anyway, 1 refused, 2 wrong -> hallucination 2/4
    assert closed["factorised"]["hallucination"] == pytest.approx(2 / 4)
    assert rag["metrics"]["searches"]["mean"] == 1.0
    assert closed["metrics"]["searches"]["mean"] == 0.0
    low, high = rag["metrics"]["em"]["low"], rag["metrics"]["em"]["high"]
    assert 0 <= low < 0.5 < high <= 1

    page = html_path.read_text()
    assert page.count("<table>") >= 5  # info, answers, factorised, efficiency, per question
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    # untrusted strings appear only escaped
    assert EVIL not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    # every per-question row links to an embedded trajectory with that anchor
    for method in outcomes:
        for question in q:
            target = anchor(result_key(question.id, method, 0))
            assert f"href='#{target}'" in page and f"id='{target}'" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: no external assets


def test_report_errors_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(SleuthError, match="not an evaluation run"):
        build_report(tmp_path)


def test_compare_runs_paired_over_shared_questions(tmp_path: Path) -> None:
    q = load_benchmark("hotpotqa-1100:test", limit=12).questions
    right = [(question.answers[0], gold_ids(question)) for question in q]
    wrong = [("nothing", []) for _ in q]
    make_run(tmp_path / "a", q, {"rag": wrong[:8] + right[8:], "agent": right})
    make_run(tmp_path / "b", q[:10], {"rag": right[:10], "agent": right[:10]})

    rows = {(r["method"], r["metric"]): r for r in compare_runs(tmp_path / "a", tmp_path / "b")}
    em = rows[("rag", "em")]
    assert em["questions"] == 10  # only the questions both runs answered
    assert em["a"] == pytest.approx(0.2) and em["b"] == 1.0
    assert em["diff"] == pytest.approx(0.8)
    assert 0 < em["low"] < 0.8 < em["high"] and em["significant"] and em["p_value"] < 0.01
    same = rows[("agent", "em")]
    assert same["diff"] == 0 and not same["significant"] and same["p_value"] == 1.0
    assert rows[("rag", "evidence_recall")]["diff"] == pytest.approx(0.8)

    result = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "+0.800 *" in result.output and "rag" in result.output and "agent" in result.output
    as_json = CliRunner().invoke(
        app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]
    )
    assert json.loads(as_json.stdout)[0]["method"] in {"rag", "agent"}


def test_report_command_rewrites_the_report(tmp_path: Path, questions) -> None:
    make_run(tmp_path, questions, {"rag": [("x", []) for _ in questions]})
    result = CliRunner().invoke(app, ["eval", "report", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rag"]["episodes"] == 4
    assert (tmp_path / "report.html").is_file()


def test_each_method_against_rag_paired_and_split_by_evidence(tmp_path: Path) -> None:
    q = load_benchmark("hotpotqa-1100:test", limit=6).questions
    assert all(len(gold_ids(x)) == 2 for x in q[:4])  # half the evidence is one paragraph
    # rag: half the evidence and wrong for q0-q2, all of it and right for q3, nothing for q4-q5
    rag = [("wrong", gold_ids(x)[:1]) for x in q[:3]]
    rag += [(q[3].answers[0], gold_ids(q[3])), ("wrong", ["doc0"]), ("wrong", ["doc0"])]
    # agent_rag completes the evidence of q0 and q1 and answers them; q2 stays half and wrong;
    # with all of q3's evidence it answers wrongly (lost); q4-q5 unchanged
    agent = [(x.answers[0], gold_ids(x)) for x in q[:2]] + [("wrong", gold_ids(q[2])[:1])]
    agent += [("wrong", gold_ids(q[3])), ("wrong", ["doc0"]), ("wrong", ["doc0"])]
    closed = [(x.answers[0], []) for x in q[:1]] + [("wrong", []) for _ in q[1:]]
    make_run(tmp_path, q, {"closed_book": closed, "rag": rag, "agent_rag": agent})

    versus = build_report(tmp_path)["versus"]
    assert versus["baseline"] == "rag"
    rows = {(r["method"], r["metric"]): r for r in versus["rows"]}
    f1 = rows[("agent_rag", "f1")]
    assert f1["questions"] == 6
    assert f1["a"] == pytest.approx(1 / 6) and f1["b"] == pytest.approx(2 / 6)  # rag, agent_rag
    assert f1["diff"] == pytest.approx(1 / 6) and f1["low"] <= f1["diff"] <= f1["high"]
    recall = rows[("agent_rag", "evidence_recall")]
    assert recall["diff"] == pytest.approx((0.5 + 0.5) / 6)
    assert ("closed_book", "f1") in rows  # does retrieval help at all
    assert ("closed_book", "evidence_recall") not in rows  # closed book searches nothing

    assert set(versus["shifts"]) == {"agent_rag"}
    shifts = {
        (s["baseline_evidence"], s["method_evidence"]): s for s in versus["shifts"]["agent_rag"]
    }
    assert set(shifts) == {("part", "all"), ("part", "part"), ("all", "all"), ("none", "none")}
    completed = shifts[("part", "all")]
    assert completed["questions"] == 2 and completed["diff"] == pytest.approx(1.0)
    assert completed["share"] == pytest.approx(2 / 6)
    lost = shifts[("all", "all")]
    assert lost["questions"] == 1 and lost["baseline_f1"] == 1.0 and lost["method_f1"] == 0.0
    assert lost["share"] == pytest.approx(-1 / 6)
    assert sum(s["share"] for s in shifts.values()) == pytest.approx(f1["diff"])

    page = (write_report(tmp_path)[1]).read_text()
    assert "Against rag, question by question" in page
    assert "Where agent_rag's F1 difference comes from" in page
    result = CliRunner().invoke(app, ["eval", "report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "each method against rag" in result.output
    assert "part -> all" in result.output and "+0.333" in result.output


def test_with_several_rag_depths_each_method_is_compared_with_the_best(tmp_path: Path) -> None:
    q = load_benchmark("hotpotqa-1100:test", limit=6).questions
    right = [(x.answers[0], gold_ids(x)) for x in q]
    wrong = [("wrong", []) for _ in q]
    runs = {
        "rag@3": wrong[:4] + right[4:],  # F1 2/6
        "rag@8": wrong[:2] + right[2:],  # F1 4/6: the best depth
        "rag": wrong[:3] + right[3:],  # F1 3/6
        "searcher@3": wrong[:1] + right[1:],
    }
    make_run(tmp_path, q, runs)
    versus = build_report(tmp_path)["versus"]
    assert versus["baseline"] == "rag@8"
    assert versus["chosen"] == "the best by F1 of rag@3, rag@8, rag"
    rows = {(r["method"], r["metric"]): r for r in versus["rows"]}
    assert rows[("searcher@3", "f1")]["diff"] == pytest.approx(1 / 6)
    assert rows[("rag@3", "f1")]["diff"] == pytest.approx(-2 / 6)
    result = CliRunner().invoke(app, ["eval", "report", str(tmp_path)])
    assert "each method against rag@8 (the best by F1 of rag@3, rag@8, rag)" in " ".join(
        result.output.split()
    )
    assert "the best by F1 of rag@3, rag@8, rag" in write_report(tmp_path)[1].read_text()


def test_no_comparison_without_rag(tmp_path: Path, questions) -> None:
    make_run(tmp_path, questions, {"closed_book": [("x", []) for _ in questions]})
    assert build_report(tmp_path)["versus"] is None
    assert "Against rag" not in write_report(tmp_path)[1].read_text()


def test_versus_tables_print_names_from_the_run_literally() -> None:
    import io

    from rich.console import Console

    from sleuth.evaluate.session import versus_tables

    hostile = "[red]agent[/red]"
    versus = {
        "baseline": "rag",
        "rows": [
            {
                "method": hostile,
                "metric": "f1",
                "questions": 1,
                "a": 0.0,
                "b": 1.0,
                "diff": 1.0,
                "low": 1.0,
                "high": 1.0,
                "p_value": 0.0,
                "significant": True,
            }
        ],
        "shifts": {
            hostile: [
                {
                    "baseline_evidence": "part",
                    "method_evidence": "all",
                    "questions": 1,
                    "baseline_f1": 0.0,
                    "method_f1": 1.0,
                    "diff": 1.0,
                    "share": 1.0,
                }
            ]
        },
    }
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    for table in versus_tables(versus):
        console.print(table)
    printed = buffer.getvalue()
    assert f"F1 {hostile}" in printed and f"{hostile} - rag F1" in printed


def test_the_f1_split_groups_questions_by_the_evidence_each_read() -> None:
    """A pipeline that saw all the evidence but read half of it is a 'part' question: the split
    follows the read (read recall), and falls back to what was found for older records."""
    from sleuth.evaluate.versus import evidence_shifts, versus_rows

    def record(method: str, qid: str, f1: float, found: float, read: float | None) -> dict:
        return {"method": method, "question_id": qid, "seed": 0, "f1": f1,
                "evidence_recall": found, "read_recall": read}  # fmt: skip

    records = [
        record("rag", "q1", 0.5, 0.5, 0.5),
        record("links", "q1", 0.5, 1.0, 0.5),
        record("rag", "q2", 0.0, 0.5, 0.5),
        record("links", "q2", 1.0, 1.0, 1.0),
    ]
    rows = evidence_shifts(records, "links", "rag")
    assert [(r["evidence"], r["baseline_evidence"], r["method_evidence"]) for r in rows] == [
        ("read", "part", "part"),
        ("read", "part", "all"),
    ]
    paired = {(r["method"], r["metric"]): r for r in versus_rows(records, "rag")}
    assert paired["links", "read_recall"]["diff"] == 0.25  # (0 + 0.5) / 2
    assert paired["links", "evidence_recall"]["diff"] == 0.5
    older = [{**r, "read_recall": None} for r in records]
    assert ("links", "read_recall") not in {
        (r["method"], r["metric"]) for r in versus_rows(older, "rag")
    }
    rows = evidence_shifts(older, "links", "rag")
    assert [(r["evidence"], r["method_evidence"], r["questions"]) for r in rows] == [
        ("found", "all", 2)
    ]
