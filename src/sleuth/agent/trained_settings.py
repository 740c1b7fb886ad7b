"""The agent settings a fine-tuned model was trained with, so commands can default to them.

A model primed by ``sleuth train sft`` saw one system prompt (with or without the worked
example), one hit length and one way of starting (the loop's retrieval first, or not). Run with
other settings it is off its training: the shipped ``smollm2-135m-primed``'s agent_rag scored
F1 0.137 with the 300-character hits it was trained on and 0.118 with 600 (docs/training.md).
``sleuth train sft`` therefore records the settings of its training episodes in the model's
``sleuth_training.json`` (key ``inference``), and ``ask`` / ``eval run`` / ``demo`` use them
wherever the user gave no flag of their own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROVENANCE = "sleuth_training.json"
# AgentConfig fields a training episode fixes and inference should repeat.
SETTING_KEYS = ("prompt_example", "prefetch_k", "doc_chars")
# What a recorded value must be to be used (the record is a file anyone could have edited).
_VALID = {
    "prompt_example": lambda v: isinstance(v, bool),
    "prefetch_k": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 50,
    "doc_chars": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000,
}


def settings_of_episodes(configs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The most common value of each setting among the episodes' agent configs;
    ``searcher: True`` when most were a searcher's (``select``: a reader answers), and
    ``read_selection_only: True`` when most searchers' readers read the selection alone, and
    ``follows_links: True`` when most searchers could follow links (``searcher_links@K``)."""
    counts: dict[str, Counter] = {key: Counter() for key in SETTING_KEYS}
    roles: Counter = Counter()
    alone: Counter = Counter()
    follows: Counter = Counter()
    for config in configs:
        for key in SETTING_KEYS:
            if key in config:
                counts[key][json.dumps(config[key])] += 1
        if "actions" in config:
            searcher = "select" in config["actions"]
            roles[searcher] += 1
            if searcher:
                alone[config.get("read_selection_only") is True] += 1
                follows["follow" in config["actions"]] += 1
    settings = {key: json.loads(c.most_common(1)[0][0]) for key, c in counts.items() if c}
    if roles[True] > roles[False]:
        settings["searcher"] = True
        if alone[True] > alone[False]:
            settings["read_selection_only"] = True
        if follows[True] > follows[False]:
            settings["follows_links"] = True
    return settings


def model_folder(spec: str | Path | None) -> Path | None:
    """The folder holding the model's training record: a shipped adapter's or a local one."""
    from sleuth.llm.models import SHIPPED_ADAPTERS, shipped_adapter_dir

    if spec is None or str(spec) in ("", "packaged"):
        return None
    if str(spec) in SHIPPED_ADAPTERS:
        return shipped_adapter_dir(str(spec))
    folder = Path(str(spec)).expanduser()
    return folder if folder.is_dir() else None


def _inference_record(spec: str | Path | None) -> dict[str, Any]:
    """The ``inference`` object of the model's training record, unchecked; empty for a model
    Sleuth did not train or an unreadable record."""
    folder = model_folder(spec)
    if folder is None or not (folder / PROVENANCE).is_file():
        return {}
    try:
        record = json.loads((folder / PROVENANCE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    settings = record.get("inference") if isinstance(record, dict) else None
    return settings if isinstance(settings, dict) else {}


def trained_settings(spec: str | Path | None) -> dict[str, Any]:
    """``{"prompt_example": ..., "prefetch_k": ..., "doc_chars": ...}`` recorded for the model
    (any subset; empty for a model Sleuth did not train or an unreadable record)."""
    settings = _inference_record(spec)
    return {
        key: settings[key] for key in SETTING_KEYS if key in settings and _VALID[key](settings[key])
    }


def trained_as_searcher(spec: str | Path | None) -> bool:
    """True when the model's training episodes were a searcher's (``synth trajectories
    --searcher``): it selects documents for a reader rather than answering."""
    return _inference_record(spec).get("searcher") is True


def searcher_base_reader(spec: str | Path | None) -> str | None:
    """The model a trained searcher's reader defaults to when none is given: the base the
    searcher's LoRA adapter sits on, frozen (s3's reader is never the trained searcher, whose
    training taught it to select, not to answer). None for a model that is not an adapter."""
    from sleuth.llm.models import base_spec, is_adapter_folder

    folder = model_folder(spec)
    if folder is None or not is_adapter_folder(folder):
        return None
    return base_spec(folder)


def trained_to_read_selection_only(spec: str | Path | None) -> bool:
    """True when the model was trained as a searcher whose reader reads its selection alone
    (``train searcher --read-selection-only``: eval's ``searcher_selected@K``)."""
    record = _inference_record(spec)
    return record.get("searcher") is True and record.get("read_selection_only") is True


def trained_to_follow_links(spec: str | Path | None) -> bool:
    """True when the model was trained as a searcher that follows links (``synth
    trajectories --searcher K --teacher follow``: eval's ``searcher_links@K``)."""
    record = _inference_record(spec)
    return record.get("searcher") is True and record.get("follows_links") is True


def fill_in(trained: dict[str, Any], **given: Any) -> dict[str, Any]:
    """Each setting the user gave (not None) as given; the rest as the model was trained, else
    ``AgentConfig``'s default: one rule for every command that runs a model."""
    from dataclasses import fields

    from sleuth.agent.config import AgentConfig

    defaults = {f.name: f.default for f in fields(AgentConfig)}
    return {
        key: value if value is not None else trained.get(key, defaults[key])
        for key, value in given.items()
    }


def describe(settings: dict[str, Any]) -> str:
    """The settings in words, for the line a command prints before it runs the model."""
    parts = []
    if "prompt_example" in settings:
        parts.append("a worked example" if settings["prompt_example"] else "no worked example")
    if settings.get("prefetch_k"):
        parts.append(f"the question searched first (top {settings['prefetch_k']})")
    if "doc_chars" in settings:
        parts.append(f"{settings['doc_chars']}-character hits")
    return ", ".join(parts)
