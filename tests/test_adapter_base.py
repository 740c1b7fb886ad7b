"""An adapter trained on top of another local adapter names that base so it loads from any
working directory and when the two move together (a LoRA-on-adapter checkpoint used to record
the base as the path typed at training time, relative to the directory training ran in)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sleuth.errors import LLMError
from sleuth.llm.models import base_spec
from sleuth.train.lora import ADAPTER_CONFIG, point_adapter_at


def _adapter(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True)
    (folder / ADAPTER_CONFIG).write_text(json.dumps({"base_model_name_or_path": base, "r": 4}))
    return folder


def _written_base(folder: Path) -> str:
    return json.loads((folder / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def test_a_local_base_is_written_beside_the_adapter_and_found_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    project = tmp_path / "project"
    primed = _adapter(project / "runs" / "primed" / "adapter", "packaged")
    monkeypatch.chdir(project)
    # staged one level deeper than where it is published, as the trainer's checkpoints are
    staged = _adapter(project / "runs" / "grpo" / ".staging" / "checkpoint-9", "/cache/peft/x")
    final = project / "runs" / "grpo" / "checkpoint-9"
    assert point_adapter_at(staged, "runs/primed/adapter", home=final)
    assert _written_base(staged) == "../../primed/adapter"
    staged.rename(final)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert base_spec(final) == str(primed.resolve())
    moved = tmp_path / "moved"  # the run folder and its base move together
    shutil.move(project / "runs", moved)
    assert base_spec(moved / "grpo" / "checkpoint-9") == str(moved / "primed" / "adapter")


def test_names_stay_names_and_an_older_cwd_relative_base_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    named = _adapter(tmp_path / "a", "x")
    assert point_adapter_at(named, "qwen2.5-coder-0.5b")
    assert _written_base(named) == "qwen2.5-coder-0.5b" == base_spec(named)
    assert point_adapter_at(named, None) and base_spec(named) == "packaged"
    assert not point_adapter_at(tmp_path, "packaged")  # no adapter there: a full fine-tune

    _adapter(tmp_path / "runs" / "primed", "packaged")
    legacy = _adapter(tmp_path / "runs" / "old" / "checkpoint-3", "runs/primed")
    assert base_spec(legacy) == "runs/primed"  # resolved from the working directory, as before

    looped = _adapter(tmp_path / "loop", "x")
    point_adapter_at(looped, str(looped))
    assert _written_base(looped) == "."
    with pytest.raises(LLMError, match="names itself"):
        base_spec(looped)
