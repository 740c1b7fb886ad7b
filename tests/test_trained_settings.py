"""Models carry the agent settings they were trained with (``sleuth.agent.trained_settings``)."""

from __future__ import annotations

import json
from pathlib import Path

from sleuth.agent.log import TrajectoryLog
from sleuth.agent.trained_settings import (
    settings_of_episodes,
    trained_as_searcher,
    trained_settings,
    trained_to_read_selection_only,
)


def test_settings_of_episodes_takes_each_settings_most_common_value() -> None:
    configs = [
        {"prompt_example": False, "prefetch_k": 3, "doc_chars": 300},
        {"prompt_example": False, "prefetch_k": 0, "doc_chars": 300},
        {"prompt_example": True, "prefetch_k": 3, "doc_chars": 600},
        {"top_k": 3},  # an old trajectory without these keys counts for nothing
    ]
    assert settings_of_episodes(configs) == {
        "prompt_example": False,
        "prefetch_k": 3,
        "doc_chars": 300,
    }
    assert settings_of_episodes([]) == {}


def test_the_shipped_adapter_records_the_settings_of_its_training_episodes() -> None:
    """The record matches what the synthesiser writes for `make prime` (`--prefetch 3`, 300
    characters, no example): its hit length and prompt are the synthesiser's own config."""
    record = trained_settings("smollm2-135m-primed")
    assert record == {"prompt_example": False, "prefetch_k": 3, "doc_chars": 300}
    from sleuth.synth.trajectories import SYNTH_CONFIG

    assert record["doc_chars"] == SYNTH_CONFIG.doc_chars
    assert record["prompt_example"] == SYNTH_CONFIG.prompt_example


def test_a_model_without_a_usable_record_has_no_settings(tmp_path: Path) -> None:
    assert trained_settings(None) == trained_settings("packaged") == {}
    assert trained_settings("some-org/some-model") == {}  # an HF id: nothing local
    folder = tmp_path / "model"
    folder.mkdir()
    assert trained_settings(str(folder)) == {}
    (folder / "sleuth_training.json").write_text("{not json")
    assert trained_settings(str(folder)) == {}
    hostile = {"prompt_example": "yes", "prefetch_k": -1, "doc_chars": 10**9}
    (folder / "sleuth_training.json").write_text(json.dumps({"inference": hostile}))
    assert trained_settings(str(folder)) == {}  # wrong types and absurd values are dropped
    (folder / "sleuth_training.json").write_text(json.dumps({"inference": {"doc_chars": 250}}))
    assert trained_settings(str(folder)) == {"doc_chars": 250}


def test_trajectory_configs_round_trip_into_settings(tmp_path: Path) -> None:
    from sleuth.agent import AgentConfig
    from sleuth.agent.trajectory import Trajectory

    log = TrajectoryLog(tmp_path / "t.jsonl")
    for i, prefetch in enumerate((2, 2, 0)):
        config = AgentConfig(prefetch_k=prefetch, doc_chars=250, prompt_example=False)
        log.append(Trajectory(episode_id=f"e{i}", question="q", config=config.to_dict()))
    configs = [t.config for t in log.read()]
    assert settings_of_episodes(configs) == {
        "prompt_example": False,
        "prefetch_k": 2,
        "doc_chars": 250,
    }


def test_fill_in_prefers_the_flag_then_the_record_then_agent_config() -> None:
    from sleuth.agent import AgentConfig
    from sleuth.agent.trained_settings import fill_in

    trained = {"doc_chars": 300, "prompt_example": False}
    assert fill_in(trained, doc_chars=None, prompt_example=True, prefetch_k=None) == {
        "doc_chars": 300,
        "prompt_example": True,
        "prefetch_k": AgentConfig().prefetch_k,
    }
    assert fill_in({}, doc_chars=None) == {"doc_chars": AgentConfig().doc_chars}


def test_a_searchers_training_episodes_mark_the_model_as_a_searcher(tmp_path: Path) -> None:
    """Episodes of ``synth trajectories --searcher`` (actions search, select) make the record
    say ``searcher``, so ``eval run`` points at the searcher methods; agent episodes do not."""
    searcher = {"actions": ["search", "select"], "prefetch_k": 5, "doc_chars": 600}
    agent = {"actions": ["search", "open", "answer"], "prefetch_k": 3, "doc_chars": 300}
    assert settings_of_episodes([searcher, searcher, agent])["searcher"] is True
    assert "searcher" not in settings_of_episodes([searcher, agent, agent])
    folder = tmp_path / "adapter"
    folder.mkdir()
    assert not trained_as_searcher(str(folder))
    record = {"inference": settings_of_episodes([searcher])}
    (folder / "sleuth_training.json").write_text(json.dumps(record))
    assert trained_as_searcher(str(folder))
    assert trained_settings(str(folder)) == {"prefetch_k": 5, "doc_chars": 600}
    assert not trained_as_searcher("smollm2-135m-primed") and not trained_as_searcher(None)
    assert not trained_to_read_selection_only(str(folder))
    alone = {**searcher, "read_selection_only": True}
    assert settings_of_episodes([alone, alone, searcher])["read_selection_only"] is True
    assert "read_selection_only" not in settings_of_episodes([alone, searcher, searcher])
    assert "read_selection_only" not in settings_of_episodes(
        [{**agent, "read_selection_only": True}]
    )
    (folder / "sleuth_training.json").write_text(
        json.dumps({"inference": settings_of_episodes([alone])})
    )
    assert trained_to_read_selection_only(str(folder)) and trained_as_searcher(str(folder))
