"""Which engine (and at which noise level) produced the observations of a run's trajectories.

Simulated engines (``sleuth.search.simulated``) tag every hit; real engines leave the tags
empty, and the run's config names them. The report counts hits per (engine, noise) and per
label, and shows each step's source beside its hits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

REAL = "real engine"


def source_key(hit: dict[str, Any]) -> str:
    engine = hit.get("engine") or ""
    if not engine:
        return REAL
    noise = hit.get("noise")
    return f"{engine} p={noise:g}" if isinstance(noise, int | float) else engine


def step_sources(step: dict[str, Any]) -> str:
    """``simulated:corpus p=0.3 (2 real, 1 hard_negative)`` for a step, "" for real hits."""
    hits = step.get("hits") or []
    keys = Counter(source_key(h) for h in hits if h.get("engine"))
    parts = []
    for key in keys:
        labels = Counter(str(h.get("label") or "?") for h in hits if source_key(h) == key)
        parts.append(f"{key} (" + ", ".join(f"{n} {label}" for label, n in labels.items()) + ")")
    return "; ".join(parts)


def engine_provenance(trajectories: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{source: {"hits": n, "steps": m, "labels": {label: n}}}`` over every search step."""
    out: dict[str, dict[str, Any]] = {}
    for data in trajectories:
        for step in data.get("steps") or []:
            seen = set()
            for hit in step.get("hits") or []:
                key = source_key(hit)
                entry = out.setdefault(key, {"hits": 0, "steps": 0, "labels": {}})
                entry["hits"] += 1
                label = str(hit.get("label") or ("real" if key == REAL else "?"))
                entry["labels"][label] = entry["labels"].get(label, 0) + 1
                seen.add(key)
            for key in seen:
                out[key]["steps"] += 1
    return out
