"""``sleuth synth questions`` on the real bundled HotpotQA index through the real agent loop.
The model is a scripted policy (the packaged 135M model rarely writes a verifiable question; its
numbers are in docs/simulation.md): it proposes the title of the first document it read as the
answer, writes a question, and solves with the documents it is shown, so every verification
rule can be checked exactly."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.llm.scripted import ScriptedLLM
from sleuth.synth.questions import (
    QuestionSynthesizer,
    SynthSettings,
    clean_question,
    correct,
    question_messages,
    write_outputs,
)

TITLE = re.compile(r"\(id: [^)]*\) ([^\n]+)")


def _text(messages) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


class Policy:
    """Proposer, question writer, evolver and solvers in one scripted model."""

    def __init__(
        self, closed_book_knows: bool = False, long_answers: bool = False, same_question=False
    ) -> None:
        self.closed_book_knows, self.long_answers = closed_book_knows, long_answers
        self.same_question = same_question  # else each question is numbered: no two alike
        self.proposed: list[str] = []

    def __call__(self, messages) -> str:
        system = str(messages[0]["content"])
        if system.startswith("You write quiz questions"):
            number = "" if self.same_question else f" (quiz {len(self.proposed)})"
            return (
                f"Question: Which subject do the listed documents describe first{number}?\nThanks"
            )
        if system.startswith("You rewrite quiz questions"):
            return (
                f"Which subject is described first in the listed documents ({len(self.proposed)})?"
            )
        titles = TITLE.findall(_text(messages[1:]))
        if "<search>" in system:  # the proposer
            if len(self.proposed) % 2 and self.long_answers:
                self.proposed.append("x")
                return "<answer>a sentence that is far too long to be a span</answer>"
            answer = min(titles[:3], key=len)
            self.proposed.append(answer)
            return f"<answer>{answer}</answer>"
        if titles:  # the RAG solver: reads the proposed answer off the documents it was shown
            found = self.proposed and self.proposed[-1] in titles
            return f"<answer>{self.proposed[-1] if found else 'not found'}</answer>"
        known = self.proposed[-1] if self.closed_book_knows else "no idea"
        return f"<answer>{known}</answer>"


def _run(hotpot_bm25, policy, **settings):
    synth = QuestionSynthesizer(ScriptedLLM(policy), hotpot_bm25, SynthSettings(**settings))
    return synth, asyncio.run(synth.run())


def test_accepted_questions_verify_and_load_as_a_benchmark(hotpot_bm25, tmp_path):
    policy = Policy(long_answers=True)
    synth, proposals = _run(hotpot_bm25, policy, n=6, seed=3)
    assert len(proposals) == 6 and len(synth.trajectories) == 6
    assert all(t.metadata["role"] == "proposer" and t.searches for t in synth.trajectories)
    rejected = [p for p in proposals if not p.accepted]
    assert {p.rejected for p in rejected} == {"answer longer than 5 words"}
    accepted = [p for p in proposals if p.accepted]
    assert len(accepted) == 3
    for p in accepted:
        assert correct(p.rag_answer, p.answer) and not p.too_easy
        assert re.fullmatch(
            r"Which subject do the listed documents describe first \(quiz \d\)\?", p.question
        )
        assert p.evidence_ids and set(p.evidence_ids) <= set(p.retrieved_ids)
        for doc_id in p.evidence_ids:
            doc = hotpot_bm25.get(doc_id)
            assert correct(f"{doc.title} {doc.text}", p.answer) or p.answer in doc.title
    out = tmp_path / "q.jsonl"
    stats = write_outputs(proposals, out, drop_easy=False)
    assert stats["proposals"] == 6 and stats["verified"] == 3 and stats["acceptance_rate"] == 0.5
    bench = load_benchmark(out)
    assert [q.answers for q in bench.questions] == [(p.answer,) for p in accepted]
    assert [q.gold_evidence for q in bench.questions] == [
        tuple((i,) for i in p.evidence_ids) for p in accepted
    ]
    lines = (tmp_path / "q.jsonl.proposals.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[1])["rejected"]


def test_closed_book_right_flags_too_easy_and_drop_easy_leaves_them_out(hotpot_bm25, tmp_path):
    _, proposals = _run(hotpot_bm25, Policy(closed_book_knows=True), n=3, seed=1)
    assert proposals and all(p.accepted and p.too_easy for p in proposals)
    stats = write_outputs(proposals, tmp_path / "easy.jsonl", drop_easy=True)
    assert stats["share_too_easy"] == 1.0 and stats["written"] == 0
    kept = write_outputs(proposals, tmp_path / "kept.jsonl", drop_easy=False)
    assert kept["written"] == 3
    assert all(q.metadata["too_easy"] for q in load_benchmark(tmp_path / "kept.jsonl").questions)


def test_a_wrong_rag_solver_rejects_and_evolve_rewrites_only_verified_questions(hotpot_bm25):
    def wrong_solver(messages):
        system = str(messages[0]["content"])
        if "<search>" in system or system.startswith("You"):
            return Policy()(messages)
        return "<answer>Nobody</answer>"

    _, proposals = _run(hotpot_bm25, wrong_solver, n=2, seed=2)
    assert {p.rejected for p in proposals} == {
        "the RAG solver with the proposer's documents got it wrong"
    }
    _, evolved = _run(hotpot_bm25, Policy(), n=4, seed=3, evolve=True)
    for p in evolved:  # the scripted question never names the seed: nothing to hide, unchanged
        assert p.evolved_from == ""


def test_a_question_accepted_before_is_not_accepted_again(hotpot_bm25, tmp_path):
    """Different seeds led the Qwen proposer to one document: 16 of its 24 accepted questions
    were the same one. Only the first copy counts."""
    _, proposals = _run(hotpot_bm25, Policy(same_question=True), n=4, seed=3)
    assert len({p.answer for p in proposals}) == 4  # four different answers, one question text
    assert [p.accepted for p in proposals] == [True, False, False, False]
    assert {p.rejected for p in proposals[1:]} == {"the same question was accepted before"}
    stats = write_outputs(proposals, tmp_path / "q.jsonl", drop_easy=False)
    assert stats["verified"] == 1 and len(load_benchmark(tmp_path / "q.jsonl").questions) == 1


def test_the_question_writer_is_told_not_to_put_the_answer_in_the_question():
    assert "Do not put the answer in the question" in question_messages("x", [])[1]["content"]


def test_clean_question_and_bad_options():
    assert clean_question('Question: "Who wrote it?" More text') == "Who wrote it?"
    assert clean_question("\n\nq - Where is it? And why?") == "Where is it?"
    from serve_process import sleuth

    result = sleuth("synth", "questions", "--out", "/tmp/never.jsonl", "-n", "0")
    assert result.returncode == 2 and "-n and --hops must be at least 1" in result.stderr


@pytest.mark.parametrize(
    "answer,prediction,ok",
    [("Tulsa", "tulsa", True), ("Tulsa", "In Tulsa", True), ("Tulsa", "Oklahoma City", False)],
)
def test_correctness_uses_the_eval_metrics(answer, prediction, ok):
    assert correct(prediction, answer) is ok


def test_a_question_holding_its_answer_as_a_possessive_is_caught():
    from sleuth.synth.questions import contains_answer

    answer = "Hayden Leslie Panettiere"
    assert contains_answer("What is Hayden Leslie Panettiere's name?", answer)
    assert contains_answer("What is Hayden Leslie Panettiere\u2019s name?", answer)
    assert not contains_answer("Which actress played Claire Bennet in Heroes?", answer)


def test_the_proposer_starts_from_its_seed_and_chooses_among_spans(hotpot_bm25):
    """The first retrieval is of the seed's title (searching the whole task text found the same
    documents for every seed), and the answer is chosen among spans read, yes/no excluded."""
    synth, proposals = _run(hotpot_bm25, Policy(), n=6, seed=5)
    found_own_seed = 0
    for proposal, trajectory in zip(proposals, synth.trajectories, strict=True):
        first = trajectory.steps[0]
        assert first.action == "search" and first.argument == proposal.seed_title
        found_own_seed += proposal.seed_id in [hit.id for hit in first.hits]
        assert trajectory.config["answer_spans"] and not trajectory.config["answer_yes_no"]
    assert found_own_seed >= 5
    assert len({p.answer for p in proposals}) == len(proposals)  # one topic per seed


def test_the_no_questions_hint_names_a_bigger_model_only_for_the_small_one(tmp_path):
    from sleuth.synth.questions import no_questions_hint

    stats = {"written": 0, "verified": 0, "proposals": 3, "rejected_because": {"no answer": 3}}
    out = tmp_path / "q.jsonl"
    for small in (None, "packaged", "smollm2-135m-primed"):
        assert "--model qwen2.5-coder-0.5b" in no_questions_hint(stats, small, out)
    big = no_questions_hint(stats, "Qwen/Qwen2.5-7B-Instruct", out)
    assert big.startswith("wrote no questions: 0 of 3") and "qwen2.5-coder" not in big
    assert "--drop-easy" in no_questions_hint({**stats, "verified": 2}, "big", out)
    assert no_questions_hint({**stats, "written": 1}, None, out) is None
