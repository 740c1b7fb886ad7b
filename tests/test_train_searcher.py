"""``sleuth train searcher`` (s3's Gain Beyond RAG): the reward, RAG answers cached once per
reader, s3's filters, and a real GRPO step of the packaged model as searcher beside a frozen
reader over the real bundled BM25 index (the reader scripted so the gain is known)."""

from __future__ import annotations

import json

import pytest
from test_cli_hardening import sleuth

from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.llm.scripted import ScriptedLLM
from sleuth.train.runlog import read_log
from sleuth.train.searcher_grpo import (
    RAG_ANSWERS,
    SearcherTrainConfig,
    build_dataset,
    build_trainer,
    cache_rag_answers,
    make_reward_function,
    searcher_episode,
    summarise_history,
    training_questions,
)


def question_rag_misses(engine, k: int = 3) -> tuple[BenchmarkQuestion, str, str]:
    """A training question whose RAG top k lacks a gold document that a search of that
    document's title finds in its top k: (question, the missing id, its title)."""
    for question in load_benchmark("hotpotqa-1100:train", limit=60).questions:
        if any(a.lower() in ("yes", "no") for a in question.answers):
            continue
        rag = {h.id for h in engine.search(question.question, k)}
        for aliases in question.gold_evidence:
            doc_id = aliases[0]
            if doc_id in rag:
                continue
            title = engine.get(doc_id).title
            if doc_id in {h.id for h in engine.search(title, k)}:
                return question, doc_id, title
    raise AssertionError("no such question in the first 60")


def reader_for(question: BenchmarkQuestion, title: str) -> ScriptedLLM:
    """Answers right exactly when the document titled ``title`` is in what it reads."""

    def read(messages):
        shown = messages[-1]["content"]
        answer = question.answers[0] if f") {title}\n" in shown else "Atlantis"
        return f"<answer>{answer}</answer>"

    return ScriptedLLM(read, name="reader")


def config(tmp_path, **changes) -> SearcherTrainConfig:
    settings = dict(
        out=str(tmp_path / "run"), reader="reader", steps=1, num_generations=2, concurrency=1,
        learning_rate=1e-4,
    )  # fmt: skip
    return SearcherTrainConfig(**{**settings, **changes})


def trajectory(answer: str, read: list[str]) -> str:
    traj = Trajectory("e", "q", answer=answer, metadata={"final_read": read})
    return json.dumps(traj.to_dict())


def test_the_reward_is_the_gain_beyond_rag_with_s3s_options(tmp_path):
    rows = dict(
        prompts=["q"] * 3, completions=[""] * 3,
        trajectory=[trajectory("Paris", ["d1", "d2"]), trajectory("Lyon", ["d1"]),
                    trajectory("Paris", ["d3"])],
        answers=[["Paris"]] * 3, evidence_ids=[["d1", "d2"]] * 3, rag_accuracy=[0.0, 0.0, 1.0],
    )  # fmt: skip
    assert make_reward_function(config(tmp_path))(**rows) == [1.0, 0.0, 0.0]
    with_acc = make_reward_function(config(tmp_path, add_accuracy=True))(**rows)
    assert with_acc == [2.0, 0.0, 1.0]
    shaped = make_reward_function(config(tmp_path, recall_weight=0.5))(**rows)
    assert shaped == [1.5, 0.25, 0.0]
    em = make_reward_function(config(tmp_path, accuracy="em"))
    assert em(**{**rows, "trajectory": [trajectory("Paris France", [])] * 3})[0] == 0.0


def test_rag_answers_are_computed_once_per_reader_and_s3s_filters_apply(hotpot_bm25, tmp_path):
    question, _, title = question_rag_misses(hotpot_bm25)
    yes_no = next(
        q for q in load_benchmark("hotpotqa-1100:train").questions if q.answers[0] == "yes"
    )
    solved = BenchmarkQuestion(id="solved", question="Who?", answers=("Atlantis",))
    cfg = config(tmp_path)
    (tmp_path / "run").mkdir()
    reader = reader_for(question, title)
    rag = cache_rag_answers(cfg, [question, yes_no, solved], reader, hotpot_bm25, log=print)
    assert len(reader.calls) == 3
    assert rag[question.id]["answer"] == "Atlantis" and rag["solved"]["accuracy"]["f1"] == 1.0
    # RAG's prompt: the question over its top 3, in the reader's answer prompt
    assert "<answer>" in reader.calls[0][0]["content"] and question.question in str(reader.calls)
    # a second run reads the cache; a line cut by a kill is recomputed
    path = tmp_path / "run" / RAG_ANSWERS
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20] + "\n")
    again = reader_for(question, title)
    assert (
        cache_rag_answers(cfg, [question, yes_no, solved], again, hotpot_bm25).keys() == rag.keys()
    )
    assert len(again.calls) == 1
    # another reader is another cache
    other = config(tmp_path, reader="other")
    fresh = reader_for(question, title)
    cache_rag_answers(other, [question], fresh, hotpot_bm25)
    assert len(fresh.calls) == 1
    kept, counts = training_questions(cfg, [question, yes_no, solved], rag)
    assert kept == [question] and counts == {
        "questions": 3, "yes_no": 1, "solved_by_rag": 1, "kept": 1
    }  # fmt: skip
    kept, _ = training_questions(config(tmp_path, keep_solved=True, keep_yes_no=True),
                                 [question, yes_no, solved], rag)  # fmt: skip
    assert len(kept) == 3
    with pytest.raises(SleuthError, match="no question left to train on"):
        training_questions(cfg, [solved], rag)


@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    return load_trainable(None)  # the packaged SmolLM2-135M, as plain float weights


def test_a_grpo_step_rewards_the_searcher_that_brings_the_reader_the_missing_evidence(
    policy, hotpot_bm25, tmp_path
):
    model, tokenizer, _ = policy
    # a small episode (2 documents of 150 characters) keeps the step quick on a CPU
    question, missing, title = question_rag_misses(hotpot_bm25, k=2)
    cfg = config(tmp_path, read_budget=2, episode=searcher_episode(top_k=2, doc_chars=150))
    (tmp_path / "run").mkdir()
    reader = reader_for(question, title)
    rag = cache_rag_answers(cfg, [question], reader, hotpot_bm25)
    dataset = build_dataset([question], rag, cfg.accuracy)
    outputs = [  # one group: a searcher that finds the missing document, one that stops at RAG
        f"<search>{title}</search>", "<select>3, 4</select><|im_end|>",
        "<select>1, 2</select><|im_end|>",
    ]  # fmt: skip

    def generate(ids, _config):
        return tokenizer(outputs.pop(0), add_special_tokens=False)["input_ids"]

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(cfg, hotpot_bm25, reader, dataset, model, tokenizer, generate)
    trainer.train()

    rollouts = trainer.sleuth_rollout.last
    by_searches = sorted(rollouts, key=lambda r: len(r.trajectory.searches))
    stayed, searched = (r.trajectory for r in by_searches)
    assert missing in searched.metadata["selected"] and missing in searched.metadata["final_read"]
    assert searched.answer == question.answers[0] and stayed.answer == "Atlantis"
    # the reader's call is outside the searcher's stream: only the searcher's tokens train
    for rollout in rollouts:
        text = tokenizer.decode(rollout.stream.completion_ids)
        assert "<answer>" not in text and "<select>" in text
    log = read_log(tmp_path / "run" / "train_log.jsonl")
    summary = summarise_history(log)
    assert summary["gbr_per_step"] == [pytest.approx(0.5)]  # (1 + 0) / 2
    assert summary["groups_with_reward_spread"] == 1.0
    changed = sum(not p.detach().equal(before[n]) for n, p in model.named_parameters())
    assert changed > 0


def test_lora_trains_only_an_adapter_that_names_its_base_and_a_wall_time_stop_resumes(
    hotpot_bm25, tmp_path
):
    from sleuth.llm.models import is_adapter_folder
    from sleuth.train.checkpoints import last_checkpoint
    from sleuth.train.policy_model import load_trainable

    question, _, title = question_rag_misses(hotpot_bm25, k=2)
    cfg = config(
        tmp_path, read_budget=2, episode=searcher_episode(top_k=2, doc_chars=150), lora=True,
        lora_r=4, lora_top_layers=2, steps=2, max_minutes=1e-6,  # stops after step 1, saved
    )  # fmt: skip
    (tmp_path / "run").mkdir()
    reader = reader_for(question, title)
    rag = cache_rag_answers(cfg, [question], reader, hotpot_bm25)
    dataset = build_dataset([question], rag, cfg.accuracy)
    outputs = [f"<search>{title}</search>", "<select>3, 4</select><|im_end|>",
               "<select>1, 2</select><|im_end|>"] * 2  # fmt: skip

    def generate(ids, _config):
        return tokenizer(outputs.pop(0), add_special_tokens=False)["input_ids"]

    model, tokenizer, _ = load_trainable(None)  # its own copy: peft wraps it in place
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(cfg, hotpot_bm25, reader, dataset, model, tokenizer, generate)
    trainer.train()
    assert trainer.state.global_step == 1  # the wall-time budget ended the run after step 1
    checkpoint = last_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.name == "checkpoint-1"
    assert is_adapter_folder(checkpoint)
    adapter = json.loads((checkpoint / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "packaged" and adapter["r"] == 4
    weights = checkpoint / "adapter_model.safetensors"
    assert weights.stat().st_size < 20_000_000  # an adapter, not the model
    # the checkpoint records how it was trained to run: ask and eval run it as a searcher
    from sleuth.agent.trained_settings import (
        trained_as_searcher,
        trained_settings,
        trained_to_read_selection_only,
    )

    assert trained_as_searcher(str(checkpoint))
    assert not trained_to_read_selection_only(str(checkpoint))  # the filled read (searcher@K)
    assert trained_settings(str(checkpoint))["doc_chars"] == 150
    assert trained_settings(str(checkpoint))["prefetch_k"] == 2  # RAG's top K, the read budget
    # only LoRA weights moved; every base weight is as loaded
    trained = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    for name, param in trainer.model.named_parameters():
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" not in name and key in base:
            assert param.detach().equal(base[key]), name
    # a rerun without the budget resumes from checkpoint-1 and finishes step 2
    model2, _, _ = load_trainable(None)
    resumed = build_trainer(
        config(tmp_path, read_budget=2, episode=searcher_episode(top_k=2, doc_chars=150),
               lora=True, lora_r=4, lora_top_layers=2, steps=2),
        hotpot_bm25, reader, dataset, model2, tokenizer, generate,
    )  # fmt: skip
    from sleuth.train.checkpoints import train_resuming

    train_resuming(resumed, tmp_path / "run", log=print)
    assert resumed.state.global_step == 2
    assert last_checkpoint(tmp_path / "run").name == "checkpoint-2"


def test_cli_refuses_bad_settings_before_anything_loads(tmp_path):
    result = sleuth(
        "train", "searcher", "--out", str(tmp_path / "r"), "--accuracy", "bleu",
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--accuracy must be one of f1, em, cover_em" in result.stderr
    assert "Traceback" not in result.stderr


def test_read_selection_only_reaches_the_training_episode_and_its_record(tmp_path):
    """``--read-selection-only`` trains the searcher of ``searcher_selected@K``: the episode's
    final read is the selection alone, and config.json's flat record carries it back."""
    from sleuth.train.episode import to_record
    from sleuth.train.searcher_grpo import EPISODE_KEYS

    trained = config(tmp_path, read_budget=5)
    assert not trained.agent_config().read_selection_only
    strict = SearcherTrainConfig.from_dict(
        {"out": str(tmp_path / "run"), "reader": "reader", "read_selection_only": True}
    )
    episode = strict.agent_config()
    assert episode.read_selection_only and episode.actions == ("search", "select")
    record = to_record(strict, EPISODE_KEYS)
    assert record["read_selection_only"] is True
    assert SearcherTrainConfig.from_dict(record).agent_config() == episode
