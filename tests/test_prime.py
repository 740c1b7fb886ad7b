"""Issue 10 item 3: behaviour priming. Synthetic episodes through the real loop and the real
HotpotQA index, their SFT encoding (loss mask = the model's own turns), and a 2-step LoRA run
whose adapter loads as a model."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sleuth.agent.grammar import ActionGrammar
from sleuth.agent.log import TrajectoryLog
from sleuth.agent.loop import Agent
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.llm.scripted import ScriptedLLM
from sleuth.synth.script import BehaviourScript, display
from sleuth.synth.trajectories import (
    JUDGE_ACTIONS,
    SYNTH_CONFIG,
    plan_for,
    synth_trajectories,
)
from sleuth.train.sft_data import SFTEncoder, conversation, model_spans, remembered_output

ROOT = Path(__file__).resolve().parents[1]
N_QUESTIONS = 30  # per split: a slice of train and of dev


@pytest.fixture(scope="module")
def episodes(hotpot_bm25, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "episodes.jsonl"
    stats = synth_trajectories(
        ["hotpotqa-1100:train", "hotpotqa-1100:dev"],
        hotpot_bm25,
        out,
        limit=N_QUESTIONS,
        seed=0,
        think_share=0.5,  # thoughts are off by default; their shape is tested here
    )
    return out, stats, TrajectoryLog(out).read()


def test_synth_refuses_the_test_split(hotpot_bm25, tmp_path):
    with pytest.raises(SleuthError, match="hotpotqa-1100:test"):
        synth_trajectories(["hotpotqa-1100:test"], hotpot_bm25, tmp_path / "x.jsonl")
    with pytest.raises(SleuthError, match="hotpotqa-1100'"):  # all splits together holds test
        synth_trajectories(["hotpotqa-1100"], hotpot_bm25, tmp_path / "x.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SLEUTH_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sleuth.cli", "synth", "trajectories", "--benchmark",
         "hotpotqa-1100:test", "--out", str(tmp_path / "t.jsonl")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not 'hotpotqa-1100:test'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "t.jsonl").exists()


def test_kept_episodes_retrieved_the_gold_evidence_and_answer(episodes):
    _, stats, trajectories = episodes
    assert stats.questions == 2 * N_QUESTIONS
    assert stats.kept == len(trajectories) >= 0.8 * stats.questions
    assert stats.kept + sum(stats.dropped.values()) == stats.questions
    test_ids = {q.id for q in load_benchmark("hotpotqa-1100:test").questions}
    for traj in trajectories:
        meta = traj.metadata
        assert meta["synthetic"] is True and meta["benchmark"] != "hotpotqa-1100:test"
        assert meta["question_id"] not in test_ids
        assert traj.stop_reason == "answered" and traj.answer == meta["answers"][0]
        shown = set(traj.retrieved_ids) | {s.argument for s in traj.steps if s.action == "open"}
        assert all(set(aliases) & shown for aliases in meta["evidence_ids"])
        # the inference configuration, recorded in every record
        assert traj.config["top_k"] == 3 and traj.config["doc_chars"] == 300
        assert traj.config["max_turns"] == 6 and traj.config["max_searches"] == 4
        assert traj.config["prompt_example"] is False and traj.config["constrain"] is True


def test_every_scripted_turn_matches_the_action_grammar(episodes):
    _, _, trajectories = episodes
    turns = 0
    for traj in trajectories:
        pattern = ActionGrammar(tuple(traj.config["actions"]), think=True).tag_regex()
        for step in traj.steps:
            text = remembered_output(step)
            assert re.fullmatch(pattern, text), text
            turns += 1
    assert turns > 3 * len(trajectories)


def test_episodes_show_the_behaviours(episodes):
    _, stats, trajectories = episodes
    for behaviour in ("first_hop", "reformulation", "judge_found", "bridge_hop", "think"):
        assert stats.behaviours[behaviour] > 0, behaviour
    by_behaviour = {b: [t for t in trajectories if b in t.metadata["behaviours"]] for b in
                    stats.behaviours}  # fmt: skip
    for traj in by_behaviour["bridge_hop"]:  # the hop-2 query names what an earlier step showed
        name = display(traj.metadata["hops"][1])
        hop2 = next(s for s in traj.searches[1:] if s.argument.startswith(name))
        earlier = " ".join(s.observation for s in traj.steps if s.index < hop2.index)
        assert name in earlier and name not in traj.question, traj.question
    for traj in by_behaviour["reformulation"]:  # a search whose hits missed, then another one
        assert len(traj.searches) >= 2
    for traj in by_behaviour["judge_found"]:
        judged = [s for s in traj.steps if s.action == "judge"]
        assert judged[-1].argument.startswith("yes: ")
        assert set(traj.config["actions"]) == set(JUDGE_ACTIONS)
        assert "sufficient" in judged[-1].observation
    for traj in trajectories:
        for step in traj.steps:  # thoughts stay short
            if thought := re.match(r"<think>(.*?)</think>", step.model_output):
                assert len(thought.group(1).split()) <= 12


def test_prefetched_episodes_start_from_the_loops_retrieval(hotpot_bm25, tmp_path):
    """``--prefetch 3`` (priming for agent_rag): the loop's retrieval of the whole question is
    step 0, the script writes no first hop of its own, and the loop's search budget counts it."""
    out = tmp_path / "prefetched.jsonl"
    stats = synth_trajectories(
        ["hotpotqa-1100:train"], hotpot_bm25, out, limit=N_QUESTIONS, seed=0, prefetch_k=3
    )
    trajectories = TrajectoryLog(out).read()
    assert stats.kept == len(trajectories) >= 0.8 * N_QUESTIONS
    assert stats.behaviours["prefetched"] == stats.kept and "first_hop" not in stats.behaviours
    assert "think" not in stats.behaviours  # the default: no thought to copy into an answer
    follow_ups = 0
    for traj in trajectories:
        first = traj.steps[0]
        assert first.action == "search" and first.argument == traj.question
        assert not first.model_output and len(first.hits) == 3  # the loop's, not the model's
        assert traj.config["prefetch_k"] == 3 and traj.metadata["prefetch_k"] == 3
        assert traj.steps[1].prompt_delta[0]["content"].startswith("<information>")
        assert not any("<think>" in step.model_output for step in traj.steps)
        assert len(traj.searches) <= traj.config["max_searches"]
        follow_ups += len(traj.searches) > 1
        shown = set(traj.retrieved_ids) | {s.argument for s in traj.steps if s.action == "open"}
        assert all(set(aliases) & shown for aliases in traj.metadata["evidence_ids"])
    assert follow_ups >= 0.6 * len(trajectories)  # most go on to a second hop
    encoded = [m for t in trajectories for m in conversation(t) if m["role"] == "assistant"]
    assert not any(m["content"].startswith("<information>") for m in encoded)


def test_conversation_is_what_the_loop_sent(hotpot_bm25):
    """Rebuilding the messages from the trajectory gives exactly what the model was shown."""
    question = load_benchmark("hotpotqa-1100:train", limit=3).questions[2]
    import random

    for config in (SYNTH_CONFIG, replace(SYNTH_CONFIG, actions=JUDGE_ACTIONS)):
        rng = random.Random(1)
        plan = plan_for(question, hotpot_bm25, config, rng)
        script = BehaviourScript(plan, rng, config.max_turns, config.max_searches)
        llm = ScriptedLLM(script)
        traj = asyncio.run(Agent(llm, hotpot_bm25, config).run(question.question))
        rebuilt = conversation(traj)
        assert rebuilt[:-1] == llm.calls[-1]  # the last call saw everything but its own turn
        assert rebuilt[-1] == {"role": "assistant", "content": remembered_output(traj.steps[-1])}


def test_loss_mask_covers_exactly_the_model_turns(episodes, tokenizer):
    _, _, trajectories = episodes
    encoder = SFTEncoder(tokenizer)
    for traj in trajectories[:10]:
        example = encoder.encode_trajectory(traj)
        expected = [remembered_output(s) + tokenizer.eos_token for s in traj.steps]
        assert model_spans(example, tokenizer) == expected
        rendered = tokenizer.apply_chat_template(conversation(traj), tokenize=False)
        assert tokenizer.decode(example.input_ids) == rendered  # nothing lost or added


@pytest.mark.slow  # 136 s on the shared 2-core machine under load (run: pytest -m slow)
def test_two_step_lora_sft_writes_an_adapter_that_loads(episodes, tmp_path, tokenizer):
    from sleuth.agent.trained_settings import settings_of_episodes
    from sleuth.llm import GenerationConfig, load_llm
    from sleuth.train.sft import PROVENANCE, SFTRunConfig, train_sft

    data, _, trajectories = episodes
    out = tmp_path / "adapter"
    summary = train_sft(
        SFTRunConfig(
            data=str(data),
            out=str(out),
            max_steps=2,
            grad_accum=1,
            max_length=640,  # the shortest episodes only: a quick run
            lora_top_layers=4,
            seed=0,
        ),
        log=lambda _: None,
    )
    assert summary["steps"] == 2 and summary["examples"] >= 2
    assert summary["loss_tokens"] < summary["tokens"]
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", PROVENANCE} <= files
    assert not any(p.name.startswith(".adapter") for p in tmp_path.iterdir())  # staging removed
    assert (out / "adapter_model.safetensors").stat().st_size < 20e6
    assert len(summary["data_sha256"]) == 64 and summary["versions"]["peft"]
    # what ask / eval / demo will default to for this model: the episodes' own settings
    assert summary["inference"] == settings_of_episodes(t.config for t in trajectories)
    assert summary["inference"]["doc_chars"] == trajectories[0].config["doc_chars"]
    with pytest.raises(SleuthError, match="exists"):
        train_sft(SFTRunConfig(data=str(data), out=str(out), max_steps=1), log=lambda _: None)

    llm = load_llm(str(out), backend="transformers")
    assert llm.name == "adapter"
    messages = conversation(trajectories[0])[:2]
    config = GenerationConfig(max_tokens=24, temperature=0.0, constraint=None)
    completion = asyncio.run(llm.complete(messages, config))
    assert completion.usage.completion_tokens > 0 and completion.text.strip()
    base = load_llm(None, backend="transformers")  # the merge changed the weights
    import torch

    merged = dict(llm.model.named_parameters())
    changed = [
        name
        for name, param in base.model.named_parameters()
        if "proj" in name and not torch.equal(param, merged[name])
    ]
    assert changed


def test_shipped_adapter_is_small_recorded_and_acts(hotpot_bm25):
    """Point 6: the primed weights ship as a small LoRA adapter whose folder records how
    ``make prime`` built it, and ``smollm2-135m-primed`` loads them as a model that acts."""
    import json

    from sleuth.evaluate.demo import demo_budget
    from sleuth.evaluate.methods import agent_config
    from sleuth.llm import load_llm
    from sleuth.llm.models import resolve_hf_folder, shipped_adapter_dir

    folder = shipped_adapter_dir("smollm2-135m-primed")
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 20 * 2**20
    record = json.loads((folder / "sleuth_training.json").read_text())
    assert record["kind"] == "lora" and record["base_model"] == "packaged"
    assert record["seed"] == 0 and re.fullmatch(r"[0-9a-f]{64}", record["data_sha256"])
    assert {"torch", "transformers", "trl", "peft"} <= set(record["versions"])
    merged, name = resolve_hf_folder("smollm2-135m-primed")
    assert name == "smollm2-135m-primed" and (Path(merged) / "config.json").is_file()

    question = load_benchmark("hotpotqa-1100:dev", limit=1).questions[0]
    budget = demo_budget()  # the demo runs the model as it was trained
    assert (budget.doc_chars, budget.prompt_example) == (300, False)
    config = agent_config("agent_rag", budget)
    llm = load_llm("smollm2-135m-primed")  # the default backend, as make demo runs it
    traj = asyncio.run(Agent(llm, hotpot_bm25, config).run(question.question))
    assert traj.stop_reason == "answered" and traj.answer and not traj.invalid_actions
    assert traj.steps[0].argument == question.question and len(traj.searches) >= 1
