"""Issue 29: the searcher's ``follow`` action (``searcher_links@K``) and its teacher (``synth
trajectories --searcher K --teacher follow``), on the real bundled HotpotQA index: a follow
tries every name of the question or of a document shown and shows the documents titled by them,
numbered on from the episode's documents, at the cost of one search of the budget."""

from __future__ import annotations

import asyncio
import re

import pytest

from sleuth.agent import Agent
from sleuth.agent.log import TrajectoryLog
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.methods import agent_config, eval_budget, parse_methods
from sleuth.evaluate.pipelines import run_pipeline
from sleuth.llm.scripted import ScriptedLLM
from sleuth.metrics import evidence_recall
from sleuth.search.links import names_in, normalise, title_key
from sleuth.synth.searcher_script import NUMBERED_HIT, gold_reader
from sleuth.synth.trajectories import load_questions, synth_trajectories

QUESTION = 'Which came to market first, "Hey Pa! There\'s a Goat on the Roof" or "Poleconomy"'
CONFIG = agent_config("searcher_links@3", eval_budget(top_k=3))


def run(searcher: ScriptedLLM, engine, question: str = QUESTION):
    reader = ScriptedLLM(["<answer>Poleconomy</answer>"], name="reader")
    return asyncio.run(Agent(searcher, engine, CONFIG, reader=reader).run(question))


def test_the_method_offers_follow_and_keeps_rags_read_budget():
    assert parse_methods("searcher_links@03") == ["searcher_links@3"]
    assert CONFIG.actions == ("search", "follow", "select")
    assert (CONFIG.prefetch_k, CONFIG.final_read) == (3, 3)
    assert "follow" not in agent_config("searcher@3", eval_budget()).actions


def test_following_the_question_shows_the_documents_titled_by_its_names(hotpot_bm25):
    searcher = ScriptedLLM(["<follow>0</follow>", "<select>4, 1</select>"], name="searcher")
    traj = run(searcher, hotpot_bm25)
    prefetch, follow = traj.steps[0], traj.steps[1]
    assert follow.action == "follow" and not follow.error
    assert [hit.rank for hit in follow.hits] == list(range(1, len(follow.hits) + 1))
    titles = {hotpot_bm25.get(hit.id).title for hit in follow.hits}
    assert titles == {"Hey Pa! There's a Goat on the Roof", "Poleconomy"}
    # The one RAG showed keeps its number; the new one goes on from 4 and is read first.
    seen_before = [hit for hit in follow.hits if not hit.new]
    assert [hit.id for hit in seen_before] == [prefetch.hits[0].id]
    new = next(hit.id for hit in follow.hits if hit.new)
    assert re.search(rf"^\[4\] \(id: {new}\) Poleconomy", follow.observation, re.M)
    assert traj.metadata["selected"] == [new, prefetch.hits[0].id]
    assert traj.metadata["final_read"][:2] == [new, prefetch.hits[0].id]
    # One search of the budget, one engine query a name (the records' "searches" count them).
    names = names_in(QUESTION)
    assert traj.metadata["link_lookups"] == len(names) >= 2
    assert [s.action for s in traj.retrievals] == ["search", "follow"]


def test_what_the_links_pipeline_reads_for_the_question_a_follow_shows(hotpot_bm25):
    """The action is the pipeline's look-ups: on 20 test questions, the documents a follow of
    the question shows are those the links pipeline found the question names (its best hit
    aside, which the pipeline reads first anyway)."""
    questions = load_questions("hotpotqa-1100:test", hotpot_bm25, 20)
    compared = 0
    for question in questions:
        searcher = ScriptedLLM(["<follow>0</follow>", "<select>1</select>"], name="searcher")
        traj = run(searcher, hotpot_bm25, question.question)
        shown = {hit.id for hit in traj.steps[1].hits}
        pipeline = asyncio.run(
            run_pipeline("links", question, gold_reader("x"), hotpot_bm25, eval_budget(top_k=3))
        )
        best = pipeline.searches[0].hits[0].id
        assert shown - {best} == set(pipeline.metadata["links"]["question"])
        compared += bool(shown)
    assert compared >= 10  # 12 of the first 20 name at least one title


def test_following_a_document_shows_only_titles_named_in_it(hotpot_bm25):
    followed = 0
    for question in load_questions("hotpotqa-1100:train", hotpot_bm25, 10):
        searcher = ScriptedLLM(["<follow>1</follow>", "<select>1</select>"], name="searcher")
        traj = run(searcher, hotpot_bm25, question.question)
        source = traj.steps[0].hits[0].id
        shown_text = normalise(traj.steps[0].observation.split("\n[2]")[0])
        follow = traj.steps[1]
        for hit in follow.hits:
            assert hit.id != source  # no link to itself
            assert title_key(hotpot_bm25.get(hit.id).title) in shown_text
        followed += bool(follow.hits)
    assert followed >= 3  # 4 of the first 10 questions' best hits name a title


def test_mistakes_are_told_and_a_second_follow_of_one_source_forces_the_selection(hotpot_bm25):
    searcher = ScriptedLLM(
        ["<follow>9</follow>", "<follow>0</follow>", "<follow>0</follow>", "<select>1</select>"],
        name="searcher",
    )
    traj = run(searcher, hotpot_bm25)
    wrong, first, again = traj.steps[1], traj.steps[2], traj.steps[3]
    assert "numbered '9'" in wrong.error and "from 1 to 3, or 0" in wrong.observation
    assert not first.error and first.hits
    assert again.error == "followed before" and "Select the documents now" in again.observation
    assert traj.stop_reason == "selected"
    # The mistaken number cost nothing; the repeat was not run.
    assert traj.metadata["link_lookups"] == len(names_in(QUESTION))


def test_follow_spends_the_search_budget(hotpot_bm25):
    """With max_searches 2 (the prefetch and one follow) the next follow stops the episode,
    which still ends in a forced selection."""
    config = agent_config("searcher_links@3", eval_budget(top_k=3, max_searches=2))
    searcher = ScriptedLLM(
        ["<follow>0</follow>", "<follow>1</follow>", "<select>4</select>"], name="searcher"
    )
    reader = ScriptedLLM(["<answer>x</answer>"], name="reader")
    traj = asyncio.run(Agent(searcher, hotpot_bm25, config, reader=reader).run(QUESTION))
    assert [s.action for s in traj.steps][:4] == ["search", "follow", "follow", "select"]
    assert traj.steps[2].error == "search budget exhausted"
    assert traj.metadata.get("forced_select") is True


N_TRAIN = 40


@pytest.fixture(scope="module")
def follow_episodes(hotpot_bm25, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-follow") / "follow.jsonl"
    stats = synth_trajectories(
        ["hotpotqa-1100:train"], hotpot_bm25, out, limit=N_TRAIN, searcher_k=3,
        think_share=0.5, teacher="follow",
    )  # fmt: skip
    return stats, TrajectoryLog(out).read()


def test_the_teacher_follows_and_selects_by_the_numbers_on_its_screen(follow_episodes):
    stats, trajectories = follow_episodes
    assert stats.kept == len(trajectories) >= 0.4 * N_TRAIN
    assert set(stats.dropped) <= {"evidence_not_selected", "not_scriptable"}
    for traj in trajectories:
        assert traj.config["actions"] == ["search", "follow", "select"]
        steps = [s for s in traj.steps if s.model_output and s.role == "searcher"]
        follows = [s.argument for s in steps if s.action == "follow"]
        assert follows in (["0", "1"], ["1"]) and steps[-1].action == "select"
        shown: dict[str, list[int]] = {}
        for step in steps[:-1]:
            shown[step.argument] = [int(n) for n, _ in NUMBERED_HIT.findall(step.observation)]
        numbers = [int(n) for n in re.findall(r"\d+", steps[-1].argument)]
        from_question = shown.get("0", [])
        from_best = [n for n in shown["1"] if n not in from_question and n != 1]
        assert numbers == list(dict.fromkeys([1, *from_question, *from_best[:1]]))[:3]
        assert evidence_recall(traj.metadata["selected"], _gold(traj)) == 1.0


def _gold(traj) -> list[tuple[str, ...]]:
    return [tuple(aliases) for aliases in traj.metadata["evidence_ids"]]


def test_the_teachers_read_holds_more_evidence_than_rags(hotpot_bm25):
    """The rule over what follows show reads more of the gold evidence in RAG's 3 documents
    than RAG does (measured on the 200 test questions: 0.807 against 0.667)."""
    from sleuth.synth import searcher_episodes

    questions = load_questions("hotpotqa-1100:train", hotpot_bm25, N_TRAIN)
    rule, rag = [], []
    for question in questions:
        traj = _played(searcher_episodes, question, hotpot_bm25)
        rule.append(evidence_recall(traj.metadata["final_read"], question.gold_evidence))
        rag.append(evidence_recall([h.id for h in traj.steps[0].hits], question.gold_evidence))
    assert sum(rule) / len(rule) >= sum(rag) / len(rag) + 0.08


def _played(module, question: BenchmarkQuestion, engine):
    """The teacher's episode whether or not it is kept (its drop filter aside)."""
    job = module.Teaching(question, engine, "hotpotqa-1100:train", 0, 3, 0.5)
    return asyncio.run(module.play_follow_searcher(job))[0]


def test_train_searcher_follow_trains_the_searcher_links_episode(tmp_path):
    """``train searcher --follow``: the training episode offers follow, within the read budget;
    the setting survives the run's config record (a resumed run keeps it)."""
    from sleuth.train.searcher_grpo import SearcherTrainConfig

    config = SearcherTrainConfig(out=str(tmp_path), follow=True, read_budget=3)
    assert config.episode.actions == ("search", "follow", "select")
    assert (config.episode.prefetch_k, config.episode.final_read) == (3, 3)
    again = SearcherTrainConfig.from_dict({"out": str(tmp_path), "follow": True})
    assert again.episode.actions == config.episode.actions
    assert SearcherTrainConfig(out=str(tmp_path)).episode.actions == ("search", "select")


def test_a_searcher_primed_on_follow_episodes_runs_as_searcher_links(follow_episodes, tmp_path):
    """The SFT record of follow episodes says searcher and follows_links, so ``ask`` and ``eval
    run`` run the primed model with the action it learned."""
    import json

    from sleuth.agent.trained_settings import (
        PROVENANCE,
        settings_of_episodes,
        trained_to_follow_links,
    )

    _, trajectories = follow_episodes
    settings = settings_of_episodes(t.config for t in trajectories)
    assert settings["searcher"] is True and settings["follows_links"] is True
    (tmp_path / PROVENANCE).write_text(json.dumps({"inference": settings}))
    assert trained_to_follow_links(tmp_path)
    searcher_only = {**settings, "follows_links": False}
    (tmp_path / PROVENANCE).write_text(json.dumps({"inference": searcher_only}))
    assert not trained_to_follow_links(tmp_path)


def test_a_replay_after_a_follow_remembers_it(hotpot_bm25):
    """The viewer's replay rebuilds the episode before the edit: the follow counts against the
    search budget and may not be repeated, as in the episode it forks."""
    from sleuth.view.replay import Edit, replay

    parent = run(
        ScriptedLLM(
            ["<follow>0</follow>", "<search>Parker Brothers</search>", "<select>4</select>"]
        ),
        hotpot_bm25,
    )
    assert [s.action for s in parent.steps][:4] == ["search", "follow", "search", "select"]
    fork_llm = ScriptedLLM(["<follow>0</follow>", "<select>4, 1</select>"])
    fork = asyncio.run(
        replay(parent, Edit("query", 2, "Poleconomy board game"), fork_llm, hotpot_bm25)
    )
    assert fork.steps[1].action == "follow" and fork.steps[2].argument == "Poleconomy board game"
    assert fork.steps[3].action == "follow" and fork.steps[3].error == "followed before"
    assert fork.metadata["selected"][:1] == [parent.metadata["selected"][0]]


def test_an_evaluation_counts_each_look_up_as_a_search(hotpot_bm25, tmp_path):
    """``eval run --methods searcher_links@3``: the records' searches are the engine queries
    (RAG's, then one per name a follow looked up), as the links pipeline's are counted."""
    import json

    from sleuth.evaluate.runner import EvaluationRunner, RunSettings

    questions = load_benchmark_questions(3)
    settings = RunSettings(
        benchmark="hotpotqa-1100:test", methods=["searcher_links@3"], budget=eval_budget(top_k=3),
        model="searcher-model", search="bm25", reader="reader-model",
    )  # fmt: skip
    searcher = follow_question_then_select("4, 1")
    reader = ScriptedLLM(lambda messages: "<answer>x</answer>", name="reader-model")
    runner = EvaluationRunner(tmp_path, settings, questions, searcher, hotpot_bm25, reader=reader)
    assert asyncio.run(runner.run()).ran == 3
    trajectories = [
        json.loads(x) for x in (tmp_path / "trajectories.jsonl").read_text().splitlines()
    ]
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    for traj, record in zip(trajectories, records, strict=True):
        question = next(q for q in questions if q.id == record["question_id"])
        assert record["searches"] == 1 + len(names_in(question.question))
        assert traj["metadata"]["link_lookups"] == len(names_in(question.question))
        assert record["documents_read"] == 3


def follow_question_then_select(numbers: str) -> ScriptedLLM:
    """A searcher for every episode of a run: follow the question's links, then select."""

    def turn(messages: list[dict]) -> str:
        first = not any(m["role"] == "assistant" for m in messages)
        return "<follow>0</follow>" if first else f"<select>{numbers}</select>"

    return ScriptedLLM(turn, name="searcher-model")


def load_benchmark_questions(n: int):
    from sleuth.evaluate.benchmarks import load_benchmark

    return load_benchmark("hotpotqa-1100:test", limit=n).questions


def test_a_run_with_a_searcher_model_searches_with_it_and_reads_with_the_runs_model(
    hotpot_bm25, tmp_path
):
    """``eval run --searcher`` / the demo's row: the searcher methods search with the searcher
    model and their reader is the run's model, which also answers every other method; the
    searcher runs with the worked example as it was trained, the hits at the run's length."""
    import json

    from sleuth.evaluate.runner import EvaluationRunner, RunSettings

    questions = load_benchmark_questions(2)
    settings = RunSettings(
        benchmark="hotpotqa-1100:test", methods=["rag@3", "searcher_links@3"],
        budget=eval_budget(top_k=3, prompt_example=False), model="run-model", search="bm25",
        searcher="smollm2-135m-searcher",
    )  # fmt: skip
    searcher = follow_question_then_select("1")
    model = ScriptedLLM(lambda messages: "<answer>x</answer>", name="run-model")
    runner = EvaluationRunner(tmp_path, settings, questions, model, hotpot_bm25, searcher=searcher)
    assert asyncio.run(runner.run()).ran == 4
    assert len(searcher.calls) == 2 * 2 and len(model.calls) == 2 * 2  # 2 turns; 1 read each
    assert "Example (an invented question)" in searcher.calls[0][0]["content"]  # as trained
    assert all("Example" not in call[0]["content"] for call in model.calls)
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"rag@3", "searcher_links@3"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["searcher"] == "smollm2-135m-searcher"


def test_eval_refuses_a_searcher_without_a_searcher_method(tmp_path):
    from test_cli_hardening import sleuth

    result = sleuth(
        "eval", "run", "--methods", "rag@3", "--searcher", "smollm2-135m-searcher",
        "--out", str(tmp_path / "run"), "-n", "1", cache=tmp_path / "cache",
    )  # fmt: skip
    assert result.returncode != 0
    assert "--searcher searches for the searcher methods only" in result.stderr


def test_the_shipped_searcher_is_small_recorded_and_follows_links(hotpot_bm25):
    """Issue 29 item 7: the trained searcher ships as a LoRA adapter of at most 20 MB whose
    record says how ``make searcher`` built it, and ``smollm2-135m-searcher`` loads as a model
    that follows the links of the question and of [1] and selects from what they showed."""
    import json

    from sleuth.agent.trained_settings import trained_settings, trained_to_follow_links
    from sleuth.llm import load_llm
    from sleuth.llm.models import shipped_adapter_dir

    folder = shipped_adapter_dir("smollm2-135m-searcher")
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 20 * 2**20
    record = json.loads((folder / "sleuth_training.json").read_text())
    assert record["kind"] == "lora" and record["base_model"] == "packaged" and record["seed"] == 0
    assert re.fullmatch(r"[0-9a-f]{64}", record["data_sha256"]) and record["trajectories"] == 331
    assert "--lora" in record["command"] and record["inference"]["searcher"] is True
    assert trained_to_follow_links("smollm2-135m-searcher")
    config = agent_config("searcher_links@3", eval_budget(top_k=3))
    assert trained_settings("smollm2-135m-searcher")["doc_chars"] == config.doc_chars

    searcher = load_llm("smollm2-135m-searcher")  # the default backend, as the demo runs it
    reader = ScriptedLLM(lambda messages: "<answer>x</answer>", name="reader")
    followed = 0
    for question in load_benchmark_questions(3):
        agent = Agent(searcher, hotpot_bm25, config, reader=reader)
        traj = asyncio.run(agent.run(question.question))
        assert traj.stop_reason == "selected" and not traj.invalid_actions
        followed += sum(step.action == "follow" for step in traj.steps)
        shown = {hit.id for step in traj.retrievals for hit in step.hits}
        assert set(traj.metadata["selected"]) <= shown
    assert followed >= 3


def test_model_list_says_the_shipped_searcher_needs_a_reader():
    from typer.testing import CliRunner

    from sleuth.cli import app

    listed = CliRunner().invoke(app, ["model", "list"]).output
    after = listed[listed.index("smollm2-135m-searcher") :]
    assert "a searcher: a reader answers (--reader; `ask` defaults to the base model; " in after
    assert "eval method searcher_links@K)" in after
    assert "a searcher" not in listed[: listed.index("smollm2-135m-searcher")]


def test_ask_reads_with_a_searchers_base_model_when_no_reader_is_given(hotpot_bm25_path, tmp_path):
    """A searcher was taught to select, not to answer (the shipped one answered its own
    thought, "the question names documents"): without --reader, ``ask`` has the base model its
    adapter sits on read, says so, and records it as the reader. The searcher is served on
    loopback; the reader is the real packaged model (converted by ``make install``)."""
    import json

    from conftest import LiveServer
    from test_cli_hardening import sleuth

    from sleuth.agent.trained_settings import PROVENANCE, searcher_base_reader
    from sleuth.llm.serve_llm import create_llm_app
    from sleuth.paths import cache_dir

    assert searcher_base_reader("smollm2-135m-searcher") == "packaged"
    assert searcher_base_reader("packaged") is None
    folder = tmp_path / "my-searcher"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "packaged"}))
    (folder / PROVENANCE).write_text(json.dumps({"inference": {"searcher": True}}))
    cache = tmp_path / "cache"
    cache.mkdir()
    if (cache_dir() / "models").is_dir():  # the converted packaged model, not converted again
        (cache / "models").symlink_to(cache_dir() / "models")
    searcher = ScriptedLLM(lambda messages: "<select>1, 2</select>", name=str(folder))
    out = tmp_path / "ask.jsonl"
    with LiveServer(create_llm_app(searcher)) as served:
        asked = sleuth(
            "ask", QUESTION, "--index", str(hotpot_bm25_path), "--llm-url", f"{served.url}/v1",
            "--model", str(folder), "--trajectory-out", str(out), cache=cache, timeout=600,
        )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    text = " ".join(asked.stdout.split())
    assert "read by its base model 'packaged' (--reader to choose)" in text
    assert "reader: packaged answers from the documents" in text
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["metadata"]["roles"]["reader"]["model"] != saved["model"]
    assert [s.get("role") for s in saved["steps"] if s.get("role")] == ["searcher", "reader"]
    assert len(searcher.calls) == 1  # it selected; it never answered


def test_a_second_synthesis_trains_on_the_same_examples(hotpot_bm25, tmp_path, tokenizer):
    """Trajectories record their timings, so two syntheses of the same episodes differ as
    files; the SFT record's ``examples_sha256`` digests what is trained on and agrees, which is
    how a rebuild (``make searcher``) is checked against a shipped record."""
    from sleuth.train.sft import SFTRunConfig, load_examples, sha256_file

    files = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    for out in files:
        synth_trajectories(
            ["hotpotqa-1100:train"], hotpot_bm25, out, limit=12, searcher_k=3, think_share=0.5,
            teacher="follow",
        )  # fmt: skip
    assert sha256_file(files[0]) != sha256_file(files[1])
    digests = [
        load_examples(SFTRunConfig(data=str(out), out="unused"), tokenizer)[1]["examples_sha256"]
        for out in files
    ]
    assert digests[0] == digests[1]
    first = files[0].read_text(encoding="utf-8").splitlines()
    files[1].write_text("\n".join(first[1:]) + "\n", encoding="utf-8")  # one episode fewer
    fewer = load_examples(SFTRunConfig(data=str(files[1]), out="unused"), tokenizer)[1]
    assert fewer["examples_sha256"] != digests[0]
