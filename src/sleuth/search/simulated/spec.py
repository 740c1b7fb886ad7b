"""``--simulate SPEC``: one entry point every command uses to wrap its real engine.

SPEC is ``KIND[:key=value,...]`` (a leading ``simulated:`` is allowed):

- ``corpus:noise=0.3,seed=1,hard=0.5`` real hits mixed with hard negatives and random passages
- ``llm:noise=0.5,k=3,model=packaged,max_tokens=64,temperature=0,seed=0`` LLM-written documents
  (``model`` is a local model spec, or the model name at ``url=`` / the command's --llm-url)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sleuth.errors import SleuthError

KINDS = ("corpus", "llm")
KEYS = {
    "corpus": {"noise", "seed", "hard", "depth"},
    "llm": {"noise", "seed", "k", "model", "url", "max_tokens", "temperature", "backend"},
}


@dataclass(frozen=True)
class SimulationSpec:
    kind: str
    params: dict[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float) -> float:
        try:
            return float(self.params.get(key, default))
        except ValueError:
            raise SleuthError(f"--simulate: {key}={self.params[key]!r} is not a number") from None

    def integer(self, key: str, default: int) -> int:
        value = self.number(key, default)
        if value != int(value):
            raise SleuthError(f"--simulate: {key}={self.params[key]!r} is not an integer")
        return int(value)

    def label(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"simulated:{self.kind}" + (f":{params}" if params else "")


def parse_spec(text: str) -> SimulationSpec:
    body = text.strip().removeprefix("simulated:")
    kind, _, rest = body.partition(":")
    if kind not in KINDS:
        raise SleuthError(f"--simulate {text!r}: kind must be one of {', '.join(KINDS)}")
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not value:
            raise SleuthError(f"--simulate {text!r}: {item!r} is not key=value")
        if key not in KEYS[kind]:
            known = ", ".join(sorted(KEYS[kind]))
            raise SleuthError(f"--simulate {text!r}: unknown key {key!r} (known: {known})")
        params[key] = value
    spec = SimulationSpec(kind, params)
    noise = spec.number("noise", 0.3)
    if not 0.0 <= noise <= 1.0:
        raise SleuthError(f"--simulate {text!r}: noise={noise} must be within 0..1")
    return spec


def simulated_engine(
    base: Any,
    spec: str | SimulationSpec | None,
    *,
    gold_ids: Iterable[str] = (),
    llm_url: str | None = None,
) -> Any:
    """``base`` unchanged when ``spec`` is None, else the simulated engine it names over it."""
    if spec is None:
        return base
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    noise, seed = spec.number("noise", 0.3), spec.integer("seed", 0)
    if spec.kind == "corpus":
        from sleuth.search.simulated.corpus import CorpusSimulator

        if base is None:
            raise SleuthError("--simulate corpus:... needs an index to wrap")
        return CorpusSimulator(
            base,
            noise=noise,
            seed=seed,
            hard=spec.number("hard", 0.5),
            gold_ids=gold_ids,
            depth=spec.integer("depth", 30),
        )
    from sleuth.llm import load_llm
    from sleuth.search.simulated.llm import LLMSimulator

    url = spec.params.get("url") or llm_url
    model = spec.params.get("model")
    llm = (
        load_llm(model, url=url)
        if url
        else load_llm(model, backend=spec.params.get("backend", "auto"))
    )
    engine = LLMSimulator(
        llm,
        noise=noise,
        seed=seed,
        max_tokens=spec.integer("max_tokens", 64),
        temperature=spec.number("temperature", 0.0),
        base=base,
    )
    if "k" in spec.params:
        engine.max_docs = max(1, spec.integer("k", 3))
    return engine


def gold_ids_of(questions: Iterable[Any]) -> set[str]:
    """Every gold evidence id (and alias) of the questions: what hard negatives must avoid."""
    return {alias for q in questions for aliases in q.gold_evidence for alias in aliases}
