"""Issue 31 item 4: learning to ask. Clarification episodes for priming (a real ``synth
ambiguous`` file played through the real loop and index), the ask costs of the reward, and GRPO
rollouts in which a simulated user answers the policy's ``ask``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_cli_hardening import sleuth

from sleuth.agent.log import TrajectoryLog
from sleuth.agent.trajectory import Step, Trajectory
from sleuth.agent.users import KIND_CUES, content_words
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.clarify import intent_recovery
from sleuth.rewards import Gold, combined, reward_breakdown, with_ask_cost
from sleuth.synth.ambiguous import synth_ambiguous
from sleuth.synth.ask_episodes import ask_for, load_clarify_file
from sleuth.synth.trajectories import ASK_ACTIONS, check_benchmark, synth_trajectories
from sleuth.train.agent_grpo import AgentTrainConfig, build_trainer, make_reward_function
from sleuth.train.episode import training_episode
from sleuth.train.rollout import run_episodes
from sleuth.train.runlog import read_log

N_AMBIGUOUS = 8


@pytest.fixture(scope="module")
def ambiguous_file(hotpot_bm25, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clarify") / "ambiguous-train.jsonl"
    stats = synth_ambiguous(
        "hotpotqa-1100:train", hotpot_bm25, out, limit=N_AMBIGUOUS, seed=0, purpose="train"
    )
    assert stats.ambiguous == N_AMBIGUOUS == stats.clear
    return out


@pytest.fixture(scope="module")
def episodes(ambiguous_file, hotpot_bm25, tmp_path_factory):
    out = tmp_path_factory.mktemp("clarify-episodes") / "episodes.jsonl"
    stats = synth_trajectories([str(ambiguous_file)], hotpot_bm25, out, seed=0)
    return stats, TrajectoryLog(out).read(), out


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- 1. priming data ------------------------------------------------------------------------
def test_episodes_ask_exactly_on_the_ambiguous_questions_and_search_with_the_reply(episodes):
    stats, trajectories, _ = episodes
    ambiguous = [t for t in trajectories if t.metadata["ambiguous"]]
    clear = [t for t in trajectories if not t.metadata["ambiguous"]]
    # most questions of each kind make a kept episode (a dropped one says why)
    assert len(ambiguous) >= N_AMBIGUOUS - 2 and len(clear) >= N_AMBIGUOUS - 2, stats.to_dict()
    assert stats.behaviours["ask"] == len(ambiguous) == stats.behaviours["clarified_hop"]
    for traj in trajectories:
        assert tuple(traj.config["actions"]) in (ASK_ACTIONS, ("search", "open", "judge", "ask",
                                                               "answer"))  # fmt: skip
        asks = [s for s in traj.steps if s.action == "ask"]
        if not traj.metadata["ambiguous"]:
            assert asks == []  # a clear question: the ask is offered, never used
            continue
        # exactly one ask, first, naming the kind of constraint that is missing
        assert len(asks) == 1 and traj.steps[0].action == "ask"
        kind, intent = traj.metadata["intent_kind"], traj.metadata["intent"]
        assert set(content_words(asks[0].argument)) & set(KIND_CUES[kind])
        # the user's reply is the ask's observation, from the intent
        assert asks[0].observation == f"The user says: I mean {intent}."
        assert traj.metadata["user"]["exchanges"][0]["outcome"] == "answered"
        # the next search carries every word the intent adds to the shown question
        added = set(content_words(intent)) - set(content_words(traj.question))
        first_search = next(s for s in traj.steps if s.action == "search")
        assert added <= set(content_words(first_search.argument))
        assert intent_recovery(traj, intent, traj.question) in (None, 1.0)
        assert traj.answer == traj.metadata["answers"][0]


def test_the_reply_is_environment_text_and_the_asks_are_trained_on(episodes, tokenizer):
    from sleuth.train.sft_data import SFTEncoder, conversation, model_spans, remembered_output

    _, trajectories, path = episodes
    encoder = SFTEncoder(tokenizer)
    for traj in [t for t in trajectories if t.metadata["ambiguous"]][:4]:
        messages = conversation(traj)
        assert "<ask>" in messages[0]["content"]  # the system prompt offers ask
        example = encoder.encode_trajectory(traj)
        spans = model_spans(example, tokenizer)
        assert spans == [remembered_output(s) + tokenizer.eos_token for s in traj.steps]
        assert spans[0].startswith("<ask>")  # the ask is a model turn: it is trained on
        assert not any("The user says" in span for span in spans)  # the reply never is
        environment = tokenizer.decode(
            [t for t, m in zip(example.input_ids, example.assistant_masks, strict=True) if not m]
        )
        assert f"The user says: I mean {traj.metadata['intent']}." in environment
    # `sleuth train sft --data FILE` reads the file as it reads any priming data
    from sleuth.train.sft import SFTRunConfig, load_examples

    rows, counts, settings = load_examples(
        SFTRunConfig(data=str(path), out="unused", max_length=4096), tokenizer
    )
    assert counts["examples"] == counts["trajectories"] == len(trajectories) == len(rows)
    assert 0 < counts["loss_tokens"] < counts["tokens"]
    assert settings["prompt_example"] is False


def test_a_file_of_test_questions_or_without_ambiguity_is_refused(ambiguous_file, tmp_path):
    rows = records(ambiguous_file)
    test_rows = [dict(r, split="test") if i == 3 else r for i, r in enumerate(rows)]
    test_file = write(tmp_path / "test.jsonl", test_rows)
    with pytest.raises(SleuthError, match="split 'test'"):
        check_benchmark(str(test_file))
    no_split = write(tmp_path / "nosplit.jsonl", [{k: v for k, v in rows[0].items()
                                                   if k != "split"}])  # fmt: skip
    with pytest.raises(SleuthError, match="no split"):
        load_clarify_file(no_split)
    plain = write(tmp_path / "plain.jsonl", [{k: v for k, v in rows[0].items()
                                              if k != "ambiguous"}])  # fmt: skip
    with pytest.raises(SleuthError, match="no 'ambiguous' field"):
        load_clarify_file(plain)
    # the trainers refuse a test question too, by its recorded split
    config = AgentTrainConfig(out=str(tmp_path / "run"), benchmark=str(test_file))
    from sleuth.train.agent_grpo import training_questions

    with pytest.raises(SleuthError, match="never trained on"):
        training_questions(config)


def test_train_agent_refuses_test_questions_before_anything_loads(ambiguous_file, tmp_path):
    rows = records(ambiguous_file)
    test_file = write(tmp_path / "test.jsonl", [dict(r, split="test") for r in rows[:2]])
    args = ["--out", str(tmp_path / "r"), "--benchmark", str(test_file)]
    args += ["--user", "simulated:rules"]
    result = sleuth("train", "agent", *args, cache=tmp_path / "cache")
    assert result.returncode != 0 and "split 'test'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r" / "config.json").exists()  # refused before the run was recorded


# -- 2. the ask cost ------------------------------------------------------------------------
def step(action: str, argument: str) -> Step:
    return Step(index=0, prompt_delta=[], model_output=f"<{action}>{argument}</{action}>",
                action=action, argument=argument)  # fmt: skip


def episode(asks: int, answer: str = "Paris") -> Trajectory:
    steps = [step("ask", "Which year do you mean?") for _ in range(asks)]
    steps += [step("search", "capital France"), step("answer", answer)]
    return Trajectory("e", "q", answer=answer, stop_reason="answered", steps=steps)


def test_asking_costs_on_clear_questions_and_pays_only_through_the_answer_otherwise():
    spec = with_ask_cost({"em": 1.0}, ask_cost=0.3, extra_ask_cost=0.1)
    assert spec == {"em": 1.0, "clear_asks": 0.3, "extra_asks": 0.1}
    clear, ambiguous, unmarked = (Gold(["Paris"], ambiguous=a) for a in (False, True, None))
    assert combined(episode(0), clear, spec) == 1.0
    assert combined(episode(1), clear, spec) == pytest.approx(0.7)
    assert combined(episode(2), clear, spec) == pytest.approx(0.4)
    assert combined(episode(1), ambiguous, spec) == 1.0  # no bonus for asking, no cost
    assert combined(episode(0), ambiguous, spec) == 1.0
    assert combined(episode(3), ambiguous, spec) == pytest.approx(0.8)  # two asks too many
    assert combined(episode(2), unmarked, spec) == 1.0  # not a clarification question
    parts = reward_breakdown(episode(2), clear, spec)
    assert parts["clear_asks"] == -2.0 and parts["extra_asks"] == 0.0
    assert with_ask_cost({"em": 1.0}) == {"em": 1.0}
    with pytest.raises(SleuthError, match="--ask-cost"):
        with_ask_cost({"em": 1.0}, ask_cost=-1)


def test_the_trainers_rewards_read_ambiguity_from_the_dataset_column(tmp_path):
    from sleuth.train.searcher_grpo import SearcherTrainConfig
    from sleuth.train.searcher_grpo import make_reward_function as searcher_reward

    config = AgentTrainConfig(out=str(tmp_path), reward={"em": 1.0}, ask_cost=0.5)
    reward = make_reward_function(config.reward_spec())
    logged: dict[str, float] = {}
    values = reward(
        prompts=["q"] * 3, completions=[""] * 3,
        trajectory=[episode(1).to_json(), episode(1).to_json(), episode(1).to_json()],
        answers=[["Paris"]] * 3, evidence_ids=[[]] * 3, ambiguous=[0, 1, -1],
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )  # fmt: skip
    assert values == [0.5, 1.0, 1.0]
    assert logged["reward_parts/clear_asks"] == pytest.approx(-1 / 3)
    # without the column (a plain benchmark) nothing is charged
    assert reward(prompts=["q"], completions=[""], trajectory=[episode(1).to_json()],
                  answers=[["Paris"]], evidence_ids=[[]]) == [1.0]  # fmt: skip

    searcher = SearcherTrainConfig(out=str(tmp_path), ask_cost=0.25, extra_ask_cost=0.1)
    traj = Trajectory("e", "q", answer="Paris", steps=episode(2).steps, metadata={})
    values = searcher_reward(searcher)(
        prompts=["q"] * 2, completions=[""] * 2, trajectory=[traj.to_json()] * 2,
        answers=[["Paris"]] * 2, evidence_ids=[[]] * 2, rag_accuracy=[0.0, 0.0],
        ambiguous=[0, 1],
    )  # fmt: skip
    assert values == [pytest.approx(0.5), pytest.approx(0.9)]  # GBR 1 - 2 x 0.25 | - 1 x 0.1


def test_a_user_offers_ask_in_the_training_episode_and_only_the_rules_user_trains(tmp_path):
    from sleuth.train.searcher_grpo import SearcherTrainConfig

    config = AgentTrainConfig(out=str(tmp_path), user="simulated:rules", ask_cost=0.2)
    assert config.episode.actions == ("search", "ask", "answer")
    assert AgentTrainConfig(out=str(tmp_path)).episode.actions == ("search", "answer")
    record = config.to_dict()
    assert record["user"] == "simulated:rules" and record["ask_cost"] == 0.2
    assert AgentTrainConfig.from_dict(record) == config  # config.json reads back the same
    searcher = SearcherTrainConfig(out=str(tmp_path), user="simulated:rules")
    assert searcher.episode.actions == ("search", "ask", "select")
    with pytest.raises(SleuthError, match="simulated:rules"):
        AgentTrainConfig(out=str(tmp_path), user="simulated:llm")
    with pytest.raises(SleuthError, match="--user-max-answers"):
        AgentTrainConfig(out=str(tmp_path), user="simulated:rules", user_max_answers=-1)
    with pytest.raises(SleuthError, match="--extra-ask-cost"):
        SearcherTrainConfig(out=str(tmp_path), extra_ask_cost=-0.5)
    # a benchmark that does not say which questions are ambiguous cannot have a user
    from sleuth.train.clarify import rollout_users

    plain = load_benchmark("hotpotqa-1100:train", limit=2).questions
    with pytest.raises(SleuthError, match="synth ambiguous"):
        rollout_users("simulated:rules", 2, plain)
    assert rollout_users(None, 2, plain) is None


# -- 3. rollouts with a simulated user ------------------------------------------------------
@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    return load_trainable(None)  # the packaged SmolLM2-135M, as plain float weights


def scripted(tokenizer, outputs: list[str]):
    queue = list(outputs)

    def generate(ids, config):
        return tokenizer(queue.pop(0), add_special_tokens=False)["input_ids"]

    return generate


def spans(stream) -> list[tuple[int, str]]:
    out: list[tuple[int, list[int]]] = []
    for token, flag in zip(stream.completion_ids, stream.mask, strict=True):
        if not out or out[-1][0] != flag:
            out.append((flag, []))
        out[-1][1].append(token)
    return out


def test_a_rollout_that_asks_gets_the_users_reply_as_environment_tokens(
    policy, hotpot_bm25, ambiguous_file
):
    from sleuth.train.clarify import rollout_users

    _, tokenizer, _ = policy
    questions = load_clarify_file(ambiguous_file)
    question = next(q for q in questions if q.metadata["ambiguous"])
    intent = question.metadata["intent"]
    ask = ask_for(question)
    outputs = [f"<ask>{ask}</ask>", f"<search>{intent} {question.question}</search>",
               f"<answer>{question.answers[0]}</answer><|im_end|>"]  # fmt: skip
    config = training_episode(actions=("search", "ask", "answer"), top_k=2, doc_chars=150)
    users = rollout_users("simulated:rules", 2, questions)
    [rollout] = asyncio.run(
        run_episodes([question.question], scripted(tokenizer, outputs), tokenizer, hotpot_bm25,
                     config, users=users)
    )  # fmt: skip
    traj, stream = rollout.trajectory, rollout.stream
    assert [s.action for s in traj.steps] == ["ask", "search", "answer"]
    reply = f"The user says: I mean {intent}."
    assert traj.steps[0].observation == reply
    assert traj.metadata["user"]["exchanges"] == [
        {"question": ask, "reply": f"I mean {intent}.", "outcome": "answered"}
    ]
    decoded = [(flag, tokenizer.decode(ids)) for flag, ids in spans(stream)]
    assert [flag for flag, _ in decoded] == [1, 0, 1, 0, 1]
    assert reply in decoded[1][1]  # the reply: environment tokens, masked out of the loss
    assert not any("The user says" in text for flag, text in decoded if flag)
    model_text = "".join(text for flag, text in decoded if flag)
    assert model_text == "".join(outputs)  # every model token, and only those, trained on


def test_a_grpo_step_charges_the_ask_cost_on_a_clear_question(
    policy, hotpot_bm25, ambiguous_file, tmp_path
):
    model, tokenizer, _ = policy
    clear = next(r for r in records(ambiguous_file) if not r["ambiguous"])
    data = write(tmp_path / "clear.jsonl", [clear])
    right = clear["answers"][0]
    outputs = [  # one group: an episode that asks needlessly, one that does not
        "<ask>Which one do you mean?</ask>", f"<search>{clear['question']}</search>",
        f"<answer>{right}</answer><|im_end|>",
        f"<search>{clear['question']}</search>", f"<answer>{right}</answer><|im_end|>",
    ]  # fmt: skip
    config = AgentTrainConfig(
        out=str(tmp_path / "run"), benchmark=str(data), steps=1, num_generations=2,
        concurrency=1, learning_rate=1e-4, reward={"em": 1.0}, user="simulated:rules",
        ask_cost=0.5, save_steps=10,  # no checkpoint: the step's log is what is checked
        episode=training_episode(top_k=1, doc_chars=100, prompt_example=False),
    )  # fmt: skip
    trainer = build_trainer(config, hotpot_bm25, model, tokenizer, scripted(tokenizer, outputs))
    trainer.train()

    asked, direct = (r.trajectory for r in trainer.sleuth_rollout.last)
    assert [s.action for s in asked.steps] == ["ask", "search", "answer"]
    # a clear question's user knows nothing more: "I don't know."
    assert asked.metadata["user"]["exchanges"][0]["outcome"] == "unknown"
    assert asked.answer == direct.answer == right
    log = read_log(tmp_path / "run" / "train_log.jsonl")[0]
    assert log["reward"] == pytest.approx((0.5 + 1.0) / 2)  # em 1 each, 0.5 off the asker
    assert log["reward_parts/clear_asks"] == pytest.approx(-0.5)  # one ask over two episodes
    assert log["frac_reward_zero_std"] == 0.0  # the cost alone gave the group its signal
