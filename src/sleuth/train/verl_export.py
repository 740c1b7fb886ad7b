"""Export a Sleuth benchmark as a verl training task that searches through ``sleuth serve``.

One folder holds everything a verl/Ray cluster needs, none of it importing Sleuth:

- ``train.parquet`` / ``test.parquet``: verl's RL rows (``data_source``, ``agent_name``, chat
  ``prompt``, ``ability``, ``reward_model.ground_truth.target``, ``extra_info`` with the
  question, gold answers, gold evidence ids and the ``tools_kwargs`` verl's search tool takes);
- ``sleuth_reward.py``: ``compute_score`` for ``reward.custom_reward_function.path`` (from
  ``verl_reward.py``);
- ``search_tool_config.yaml``: verl <= 0.7's built-in ``SearchTool`` pointed at ``/retrieve``;
- ``sleuth_search_tool.py``: the same tool as a function tool for verl >= 0.8 and main (which
  dropped ``SearchTool``), from ``verl_search_tool.py``;
- ``run.sh`` and ``README.md``: the exact commands; ``sleuth_export.json``: what was exported.

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written parquet that verl would read.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sleuth.agent import prompts
from sleuth.agent.actions import ACTIONS
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import REGISTRY, BenchmarkQuestion, load_benchmark
from sleuth.jsonio import atomic_write
from sleuth.search.base import MAX_K

PROMPT_STYLES = ("tools", "tags")
OUTCOMES = ("em", "f1", "cover_em")
ABILITY = "fact-reasoning"  # Search-R1's label for these QA sets
AGENT_NAME = "tool_agent"  # verl's multi-turn tool agent loop (its default is single-turn)
TOOL_NAME = "search"
HERE = Path(__file__).resolve().parent
FILES = (
    "train.parquet",
    "test.parquet",
    "sleuth_reward.py",
    "search_tool_config.yaml",
    "sleuth_search_tool.py",
    "run.sh",
    "README.md",
    "sleuth_export.json",
)

# The tag prompt's search line, reworded for a tool call: verl's tool agent loop executes
# hermes <tool_call>s, never <search> tags. Everything else is Sleuth's prompt verbatim.
TOOL_SEARCH_HELP = (
    "calling the search tool with a list of queries searches the document collection; "
    "results come back in a tool response."
)


class ExportError(SleuthError):
    """An export request that cannot be honoured (unknown split, occupied folder, bad option)."""


@dataclass(frozen=True)
class ExportOptions:
    benchmark: str = "hotpotqa-1100"
    train_split: str = "train"
    test_split: str = "test"
    test_fraction: float = 0.1  # only for benchmarks without named splits
    retrieval_url: str = "http://127.0.0.1:8000/retrieve"
    topk: int = 3
    limit: int | None = None  # questions per split
    prompt_style: str = "tools"
    outcome: str = "em"
    format_weight: float = 0.0
    timeout_s: float = 30.0

    @property
    def retrieval_urls(self) -> list[str]:
        """``--retrieval-url`` split at commas: one server, or one per node (balanced)."""
        urls = [u.strip() for u in self.retrieval_url.split(",") if u.strip()]
        return list(dict.fromkeys(urls))

    def validate(self) -> None:
        for url in self.retrieval_urls or [self.retrieval_url]:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ExportError(
                    f"--retrieval-url must be an http(s) URL such as "
                    f"http://127.0.0.1:8000/retrieve (several: comma-separated), got {url!r}"
                )
        if not 1 <= self.topk <= MAX_K:
            raise ExportError(f"--topk must be within 1..{MAX_K}, got {self.topk}")
        if self.limit is not None and self.limit < 1:
            raise ExportError(f"--limit must be at least 1, got {self.limit}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ExportError(f"--test-fraction must be between 0 and 1, got {self.test_fraction}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ExportError(f"--prompt-style must be one of {', '.join(PROMPT_STYLES)}")
        if self.outcome not in OUTCOMES:
            raise ExportError(f"--outcome must be one of {', '.join(OUTCOMES)}")
        if not math.isfinite(self.format_weight):
            raise ExportError("--format-weight must be a finite number")
        if self.train_split == self.test_split:
            raise ExportError("--train-split and --test-split must differ")


@dataclass
class ExportSummary:
    out: Path
    benchmark: str
    data_source: str
    counts: dict[str, int]
    split_sources: dict[str, str]
    files: list[str] = field(default_factory=list)


# -- prompts and rows -----------------------------------------------------------------------
def system_prompt(style: str) -> str:
    """Sleuth's tag system prompt for search + answer; for ``tools`` the search line names the
    tool instead of the tag and the tag-format worked example is left out (the answer contract
    and the data rule are unchanged)."""
    tags = prompts.tag_system_prompt(("search", "answer"), example=style == "tags")
    if style == "tags":
        return tags  # as Sleuth's own agent sees it, worked example included
    prompt = tags.replace(prompts.TAG_HELP["search"], TOOL_SEARCH_HELP)
    if prompt == tags:  # the tag prompt changed shape: fail loudly rather than export it wrong
        raise ExportError("cannot adapt Sleuth's tag prompt: its search line was not found")
    return prompt


def data_source_for(benchmark: str) -> str:
    """``sleuth/<benchmark>`` without the split, so train and test rows group together."""
    name = Path(benchmark).stem if benchmark not in REGISTRY else benchmark.split(":")[0]
    return f"sleuth/{name}"


def verl_row(
    question: BenchmarkQuestion,
    *,
    split: str,
    index: int,
    data_source: str,
    prompt: str,
    style: str,
) -> dict[str, Any]:
    """One verl RL row; ``tools_kwargs`` follows verl's search example (``create_kwargs``)."""
    target = {"target": list(question.answers)}
    row: dict[str, Any] = {"data_source": data_source}
    if style == "tools":  # tags: no column, so rollout.agent.default_agent_loop decides
        row["agent_name"] = AGENT_NAME
    return row | {
        "prompt": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": question.question},
        ],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": target},
        "extra_info": {
            "split": split,
            "index": index,
            "id": question.id,
            "question": question.question,
            "answers": list(question.answers),
            "evidence": [list(aliases) for aliases in question.gold_evidence],
            "need_tools_kwargs": style == "tools",
            "tools_kwargs": {
                TOOL_NAME: {
                    "create_kwargs": {
                        "ground_truth": target,
                        "question": question.question,
                        "data_source": data_source,
                    }
                }
            },
        },
    }


def _in_test(question_id: str, fraction: float) -> bool:
    """A stable split: the same question lands on the same side on every machine and run."""
    digest = hashlib.sha1(question_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_questions(options: ExportOptions) -> dict[str, tuple[str, list[BenchmarkQuestion]]]:
    """{"train": (source, questions), "test": ...}: named splits when the benchmark has them,
    else a hash split of its questions by id (``test_fraction``)."""
    name = options.benchmark
    if name not in REGISTRY and not Path(name).expanduser().is_file():
        known = ", ".join(k for k in REGISTRY if ":" not in k)
        raise ExportError(f"unknown benchmark {name!r}; known: {known}, or a JSONL file path")
    if ":" in name and name in REGISTRY:
        raise ExportError(
            f"pass the benchmark without a split ({name.split(':')[0]}) and choose splits "
            "with --train-split/--test-split"
        )
    named = sorted(k.split(":", 1)[1] for k in REGISTRY if k.startswith(f"{name}:"))
    if named:
        for split in (options.train_split, options.test_split):
            if split not in named:
                raise ExportError(
                    f"{name} has no split {split!r}; its splits are {', '.join(named)}"
                )
        return {
            role: (f"{name}:{split}", load_benchmark(f"{name}:{split}", options.limit).questions)
            for role, split in (("train", options.train_split), ("test", options.test_split))
        }
    questions = load_benchmark(Path(name).expanduser()).questions
    test = [q for q in questions if _in_test(q.id, options.test_fraction)]
    train = [q for q in questions if not _in_test(q.id, options.test_fraction)]
    if not train or not test:
        raise ExportError(
            f"{name} has {len(questions)} questions: too few to split with "
            f"--test-fraction {options.test_fraction}"
        )
    source = f"{name} (hashed by id, test fraction {options.test_fraction})"
    return {
        "train": (source, train[: options.limit]),
        "test": (source, test[: options.limit]),
    }


def build_rows(
    questions: list[BenchmarkQuestion], split: str, data_source: str, style: str
) -> list[dict[str, Any]]:
    prompt = system_prompt(style)
    return [
        verl_row(q, split=split, index=n, data_source=data_source, prompt=prompt, style=style)
        for n, q in enumerate(questions)
    ]


# -- writing --------------------------------------------------------------------------------
def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)

    atomic_write(path, write)


def parquet_schema(style: str = "tools"):  # -> pyarrow.Schema
    """Explicit, so an all-empty column (no evidence) still has a type verl can read."""
    import pyarrow as pa

    target = pa.struct([("target", pa.list_(pa.string()))])
    create = pa.struct(
        [("ground_truth", target), ("question", pa.string()), ("data_source", pa.string())]
    )
    tools = pa.struct([(TOOL_NAME, pa.struct([("create_kwargs", create)]))])
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    extra = pa.struct(
        [
            ("split", pa.string()),
            ("index", pa.int64()),
            ("id", pa.string()),
            ("question", pa.string()),
            ("answers", pa.list_(pa.string())),
            ("evidence", pa.list_(pa.list_(pa.string()))),
            ("need_tools_kwargs", pa.bool_()),
            ("tools_kwargs", tools),
        ]
    )
    agent = [("agent_name", pa.string())] if style == "tools" else []
    return pa.schema(
        [
            ("data_source", pa.string()),
            *agent,
            ("prompt", pa.list_(message)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", target)])),
            ("extra_info", extra),
        ]
    )


def write_parquet(rows: list[dict[str, Any]], path: Path, style: str = "tools") -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "writing parquet needs pyarrow: pip install pyarrow (or 'sleuth[train]')"
        ) from None
    table = pa.Table.from_pylist(rows, schema=parquet_schema(style))
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _set_constants(source: str, values: dict[str, Any], origin: str) -> str:
    """Rewrite ``NAME = value`` settings lines of a template module; every one must exist."""
    for name, value in values.items():
        pattern = re.compile(rf"^{name} = .*?(  #.*)?$", re.MULTILINE)
        line = f"{name} = {json.dumps(value) if isinstance(value, str) else repr(value)}"
        source, count = pattern.subn(lambda m, line=line: line + (m.group(1) or ""), source)
        if count != 1:
            raise ExportError(f"{origin}: expected one '{name} = ...' line, found {count}")
    return source


def reward_module_source(outcome: str, format_weight: float) -> str:
    source = (HERE / "verl_reward.py").read_text(encoding="utf-8")
    values = {"OUTCOME": outcome, "FORMAT_WEIGHT": float(format_weight), "ACTION_TAGS": ACTIONS}
    return _set_constants(source, values, "verl_reward.py")


def search_tool_source(retrieval_urls: list[str], topk: int, timeout_s: float) -> str:
    source = (HERE / "verl_search_tool.py").read_text(encoding="utf-8")
    values = {"RETRIEVAL_URLS": retrieval_urls, "TOPK": int(topk), "TIMEOUT_S": float(timeout_s)}
    return _set_constants(source, values, "verl_search_tool.py")


def tool_config_yaml(retrieval_urls: list[str], topk: int, timeout_s: float) -> str:
    """verl's ``SearchTool`` entry (verl <= 0.7). Strings are JSON-quoted, which YAML reads.
    That tool takes one URL: the first; the comment names the others, which only the function
    tool (``sleuth_search_tool.py``) balances over."""
    q = json.dumps
    retrieval_url = retrieval_urls[0]
    others = (
        f"# verl's SearchTool takes one URL, so it uses only the first; the other servers\n"
        f"# ({', '.join(retrieval_urls[1:])}) are used by sleuth_search_tool.py (TOOLS=function).\n"
        if len(retrieval_urls) > 1
        else ""
    )
    tool_help = q("Searches the document collection and returns the top passages.")
    param_help = q("A list of fully-formed search queries; results come back for each query.")
    return f"""\
# verl tool config written by `sleuth export verl` (verl <= 0.7: verl.tools.search_tool).
# Use with: actor_rollout_ref.rollout.multi_turn.tool_config_path=<this file>
# The tool POSTs {{"queries": [...], "topk": {topk}, "return_scores": true}} to the URL below,
# which `sleuth serve INDEX` answers. verl >= 0.8 has no SearchTool: use sleuth_search_tool.py.
{others}tools:
  - class_name: {q("verl.tools.search_tool.SearchTool")}
    config:
      type: native
      retrieval_service_url: {q(retrieval_url)}
      topk: {int(topk)}
      timeout: {float(timeout_s)}
      num_workers: 120
      rate_limit: 120
      enable_global_rate_limit: true
    tool_schema:
      type: function
      function:
        name: {q(TOOL_NAME)}
        description: {tool_help}
        parameters:
          type: object
          properties:
            query_list:
              type: array
              items:
                type: string
              description: {param_help}
          required:
            - query_list
"""


def health_url(retrieval_url: str) -> str:
    """``.../retrieve`` -> ``.../health`` (Sleuth's liveness route, no token needed)."""
    base = retrieval_url.rstrip("/")
    return (base[: -len("/retrieve")] if base.endswith("/retrieve") else base) + "/health"


def _batch_sizes(n_train: int) -> tuple[int, int]:
    """(train batch, PPO mini batch): powers of two that fit the training set, so an epoch
    has several steps and mini x rollout.n (5) splits evenly over 1-16 GPUs in micro batches
    of 2 once the batch reaches 32."""
    batch = 1
    while batch * 2 <= min(64, n_train):
        batch *= 2
    return batch, max(1, batch // 2)


def run_script(options: ExportOptions, counts: dict[str, int], data_source: str) -> str:
    batch, mini = _batch_sizes(counts["train"])
    url = options.retrieval_urls[0]
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    health_urls = " ".join(health_url(u) for u in options.retrieval_urls)
    experiment = re.sub(r"[^A-Za-z0-9_.-]+", "-", data_source.split("/", 1)[1])
    return f"""\
#!/usr/bin/env bash
# Train on this export with verl (GRPO, multi-turn search through `sleuth serve`).
# Written by `sleuth export verl`. Usage, on the Ray head node (after `ray start` on the cluster):
#   INDEX=/path/to/index MODEL=Qwen/Qwen2.5-3B-Instruct ./run.sh [more verl overrides ...]
# INDEX set: this script starts `sleuth serve $INDEX` on this node and stops it at the end.
# INDEX unset: a retrieval server must already answer at {", ".join(options.retrieval_urls)}
# (multi-node: run one `sleuth serve` per node on 127.0.0.1, see README.md).
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
MODEL="${{MODEL:-Qwen/Qwen2.5-3B-Instruct}}"
N_GPUS="${{N_GPUS:-8}}"
NNODES="${{NNODES:-1}}"
ROLLOUT="${{ROLLOUT:-sglang}}"          # or vllm
# verl needs MINI_BATCH x 5 (rollout.n) / (N_GPUS x NNODES) to be a whole multiple of 2.
TRAIN_BATCH="${{TRAIN_BATCH:-{batch}}}"   # questions per step
MINI_BATCH="${{MINI_BATCH:-{mini}}}"
EPOCHS="${{EPOCHS:-1}}"
MAX_TURNS="${{MAX_TURNS:-4}}"           # assistant turns per episode
TOOLS="${{TOOLS:-auto}}"                # auto | config (verl <= 0.7) | function (>= 0.8, main)
HEALTH_URL="${{HEALTH_URL:-{health_urls}}}"
WAIT_S="${{WAIT_S:-120}}"               # seconds to wait for a retrieval server (any one)

if [ -n "${{INDEX:-}}" ]; then
  sleuth serve "$INDEX" --host 127.0.0.1 --port {port} --default-topk {options.topk} &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
fi
python3 - "$HEALTH_URL" "$WAIT_S" <<'EOF'
import sys, time, urllib.request
urls, deadline = sys.argv[1].split(), time.monotonic() + float(sys.argv[2])
def up(url):
    try:
        urllib.request.urlopen(url, timeout=5).read()
        return True
    except Exception:
        return False
while not any(up(url) for url in urls):
    if time.monotonic() > deadline:
        sys.exit(f"no retrieval server at {{' '.join(urls)}}: start `sleuth serve` or set INDEX")
    time.sleep(0.5)
EOF

if [ "$TOOLS" = auto ]; then  # verl >= 0.8 (and main) load function tools; <= 0.7 SearchTool
  TOOLS=$(python3 - <<'EOF'
import importlib.util, pathlib
spec = importlib.util.find_spec("verl")  # finds verl's folder without importing it
tools = [pathlib.Path(p, "tools") for p in (spec and spec.submodule_search_locations or [])]
def has(name):
    return any((folder / name).is_file() for folder in tools)
print("config" if has("search_tool.py") and not has("function_tool.py") else "function")
EOF
)
fi
if [ "$TOOLS" = config ]; then
  TOOL_ARG="actor_rollout_ref.rollout.multi_turn.tool_config_path=$HERE/search_tool_config.yaml"
else
  TOOL_ARG="actor_rollout_ref.rollout.multi_turn.function_tool_path=$HERE/sleuth_search_tool.py"
fi

python3 -m verl.trainer.main_ppo \\
  algorithm.adv_estimator=grpo \\
  algorithm.use_kl_in_reward=False \\
  data.train_files="$HERE/train.parquet" \\
  data.val_files="$HERE/test.parquet" \\
  data.train_batch_size="$TRAIN_BATCH" \\
  data.max_prompt_length=1024 \\
  data.max_response_length=3072 \\
  data.filter_overlong_prompts=True \\
  data.truncation=error \\
  data.return_raw_chat=True \\
  actor_rollout_ref.model.path="$MODEL" \\
  actor_rollout_ref.model.use_remove_padding=True \\
  actor_rollout_ref.model.enable_gradient_checkpointing=True \\
  actor_rollout_ref.actor.optim.lr=1e-6 \\
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH" \\
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \\
  actor_rollout_ref.actor.use_kl_loss=True \\
  actor_rollout_ref.actor.kl_loss_coef=0.001 \\
  actor_rollout_ref.actor.kl_loss_type=low_var_kl \\
  actor_rollout_ref.actor.entropy_coeff=0 \\
  actor_rollout_ref.rollout.name="$ROLLOUT" \\
  actor_rollout_ref.rollout.mode=async \\
  actor_rollout_ref.rollout.n=5 \\
  actor_rollout_ref.rollout.tensor_model_parallel_size=1 \\
  actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \\
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \\
  actor_rollout_ref.rollout.multi_turn.enable=True \\
  actor_rollout_ref.rollout.multi_turn.format=hermes \\
  actor_rollout_ref.rollout.multi_turn.max_assistant_turns="$MAX_TURNS" \\
  actor_rollout_ref.rollout.multi_turn.max_tool_response_length=1024 \\
  "$TOOL_ARG" \\
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8 \\
  reward.custom_reward_function.path="$HERE/sleuth_reward.py" \\
  reward.custom_reward_function.name=compute_score \\
  trainer.critic_warmup=0 \\
  trainer.logger='["console"]' \\
  trainer.project_name=sleuth \\
  trainer.experiment_name={experiment}-grpo \\
  trainer.n_gpus_per_node="$N_GPUS" \\
  trainer.nnodes="$NNODES" \\
  trainer.val_before_train=True \\
  trainer.test_freq=20 \\
  trainer.save_freq=100 \\
  trainer.total_epochs="$EPOCHS" \\
  "$@"
"""


def readme(options: ExportOptions, summary: ExportSummary) -> str:
    url = options.retrieval_urls[0]
    port = urlsplit(url).port or 8000
    counts, sources = summary.counts, summary.split_sources
    n = len(options.retrieval_urls)
    servers = f"{n} servers, balanced with failover" if n > 1 else f"`{url}`"
    reward = f"outcome `{options.outcome}`, format weight {options.format_weight}"
    style_note = (
        "The system prompt is Sleuth's tag prompt with the search line pointing at the `search` "
        "tool (verl executes hermes `<tool_call>`s); answers stay `<answer>...</answer>`."
        if options.prompt_style == "tools"
        else "The system prompt is Sleuth's tag prompt verbatim (`<search>` tags): upstream verl's "
        "tool agent loop does not execute `<search>` tags, so this export needs an agent loop "
        "that does: the rows carry no `agent_name`, so set "
        "`actor_rollout_ref.rollout.agent.default_agent_loop` to your loop."
    )
    return f"""\
# verl export of `{options.benchmark}`

Written by `sleuth export verl`. Nothing here imports Sleuth: copy the folder to the cluster.

| file | what it is |
|---|---|
| `train.parquet` | {counts["train"]} rows from {sources["train"]} |
| `test.parquet` | {counts["test"]} rows from {sources["test"]} |
| `sleuth_reward.py` | `compute_score` for `reward.custom_reward_function.path` ({reward}) |
| `search_tool_config.yaml` | verl <= 0.7: `SearchTool` -> `{url}` (topk {options.topk}) |
| `sleuth_search_tool.py` | verl >= 0.8 and main: the same `search` tool over {servers} |
| `run.sh` | the training command below |
| `sleuth_export.json` | the export options and row counts |

{style_note}

## 1. Serve the index (where Sleuth is installed)

```bash
sleuth index CORPUS --out INDEX       # once, if you have no index yet (docs/search.md)
sleuth serve INDEX --host 127.0.0.1 --port {port} --default-topk {options.topk}
curl -s {health_url(url)}
```

Serve on loopback, without `--token`. On a multi-node Ray cluster, the tool runs in Ray actors
that may land on any node, so `127.0.0.1` means "this node". Either start one `sleuth serve` per
node on 127.0.0.1 (the index is a plain folder: copy it or put it on shared storage), or deploy
the index on the cluster's own Ray with `sleuth serve INDEX --ray --ray-address auto --replicas
N` (at least one replica per node: Ray Serve's HTTP proxy runs on each node with a replica, and
its port must be {port}); both keep the URL `http://127.0.0.1:{port}/retrieve`.
Or re-export with servers reachable over the network: `--retrieval-url URL1,URL2,...`;
`sleuth_search_tool.py` then starts each call at the next server in turn and fails over to the
others on a connection error or a 5xx (a failed server rests 10 s), while verl <= 0.7's
`SearchTool` takes only the first URL. Such servers need `--token` (Sleuth refuses a
non-loopback bind without one): export `SLEUTH_TOKEN` on every node before `ray start`, and the
tool sends it as a bearer token (verl <= 0.7's `SearchTool` sends none).

## 2. Train with verl

```bash
INDEX=/path/to/index MODEL=Qwen/Qwen2.5-3B-Instruct N_GPUS=8 ./run.sh
```

`run.sh` starts the server when `INDEX` is set, waits for `/health`, picks the tool file for the
installed verl (`TOOLS=config|function` to force) and runs `python3 -m verl.trainer.main_ppo`
with GRPO. Any extra argument is passed to verl as an override, e.g. a wandb log and F1 reward:

```bash
./run.sh trainer.logger='["console","wandb"]' \\
    +reward.custom_reward_function.reward_kwargs.outcome=f1
```

Multi-node: `ray start --head` on one node, `ray start --address=HEAD:6379` on the others, then
`NNODES=2 ./run.sh` on the head.
"""


def manifest(options: ExportOptions, summary: ExportSummary) -> str:
    from sleuth import __version__

    data = {
        "sleuth_version": __version__,
        "options": asdict(options),
        "data_source": summary.data_source,
        "counts": summary.counts,
        "split_sources": summary.split_sources,
        "prompt": system_prompt(options.prompt_style),
    }
    return json.dumps(data, indent=2) + "\n"


def check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(
            f"{out} is not empty; choose a new folder or pass --force to overwrite the export "
            "files in it (other files are left alone)"
        )


def export_verl(
    options: ExportOptions, out: Path, *, force: bool = False, log: Callable[[str], None] = print
) -> ExportSummary:
    """Write the whole export into ``out``; returns what was written."""
    options.validate()
    out = Path(out).expanduser()
    check_out_dir(out, force)
    splits = split_questions(options)
    data_source = data_source_for(options.benchmark)
    summary = ExportSummary(
        out=out,
        benchmark=options.benchmark,
        data_source=data_source,
        counts={role: len(qs) for role, (_, qs) in splits.items()},
        split_sources={role: source for role, (source, _) in splits.items()},
    )
    out.mkdir(parents=True, exist_ok=True)
    for role, (source, questions) in splits.items():
        rows = build_rows(questions, role, data_source, options.prompt_style)
        write_parquet(rows, out / f"{role}.parquet", options.prompt_style)
        log(f"  {role}.parquet: {len(rows)} rows from {source}")
    texts = {
        "sleuth_reward.py": reward_module_source(options.outcome, options.format_weight),
        "search_tool_config.yaml": tool_config_yaml(
            options.retrieval_urls, options.topk, options.timeout_s
        ),
        "sleuth_search_tool.py": search_tool_source(
            options.retrieval_urls, options.topk, options.timeout_s
        ),
        "README.md": readme(options, summary),
    }
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    atomic_write_text(out / "run.sh", run_script(options, summary.counts, data_source), 0o755)
    atomic_write_text(out / "sleuth_export.json", manifest(options, summary))  # last: complete
    summary.files = list(FILES)
    return summary
