"""``sleuth train expand``: query expansion trained on the search engine's feedback (LESER).

A policy rewrites a question into search queries that must obey platform rules; GRPO (TRL)
rewards each rewrite with the engine's Recall@k of the gold paragraphs, minus rule penalties.
One run reports Recall@k on held-out questions for the raw question, the untrained policy's
rewrites and the trained policy's rewrites, and saves the learning curve.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.jsonio import write_json_atomic
from sleuth.rewards.query_rewrite import PlatformRules, rewrite_reward
from sleuth.search.base import SearchEngine

FUSION_DEPTH = 100  # hits per query fed to reciprocal-rank fusion before the Recall@k cut


@dataclass(frozen=True)
class ExpandConfig:
    out: str
    model: str | None = None  # None = the packaged SmolLM2-135M-Instruct
    benchmark: str = "hotpotqa-1100"
    train_split: str = "train"
    eval_split: str = "test"
    index: str | None = None  # None = the bundled HotpotQA BM25 index
    train_limit: int = 0  # 0 = the whole split
    eval_limit: int = 0
    k: int = 10
    rules: PlatformRules = field(default_factory=PlatformRules)
    steps: int = 60
    questions_per_step: int = 2
    num_generations: int = 8
    learning_rate: float = 5e-6
    beta: float = 0.0  # KL weight; 0 skips the reference model (TRL's default too)
    temperature: float = 1.0
    max_completion_length: int = 48
    save_steps: int = 10
    seed: int = 0
    eval_batch_size: int = 16
    vllm_mode: str = ""  # "" = generate with transformers; "server" | "colocate" = TRL's vLLM
    vllm_server_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def system_prompt(rules: PlatformRules) -> str:
    lines = [
        "You write web search queries. Rewrite the user's question into at most "
        f"{rules.max_queries} short search queries that would find the documents answering it.",
        "Write one query per line and nothing else.",
        f"Each query must be at most {rules.max_chars} characters.",
    ]
    if rules.banned_terms:
        lines.append("Never use these terms: " + ", ".join(rules.banned_terms) + ".")
    if rules.required_terms:
        lines.append("Every query must contain: " + ", ".join(rules.required_terms) + ".")
    return "\n".join(lines)


def gold_ids(question: BenchmarkQuestion) -> list[str]:
    """The gold paragraphs' ids (the first alias of each is the corpus id)."""
    return [aliases[0] for aliases in question.gold_evidence if aliases]


def load_split(config: ExpandConfig, split: str, limit: int) -> list[BenchmarkQuestion]:
    name = f"{config.benchmark}:{split}" if split else config.benchmark
    questions = [q for q in load_benchmark(name).questions if gold_ids(q)]
    if not questions:
        raise SleuthError(f"{name}: no questions with gold evidence to train query rewriting on")
    return questions[:limit] if limit else questions


def ranked_ids(engine: SearchEngine) -> Callable[[list[str]], list[list[str]]]:
    """``queries -> ranked id lists`` over the engine; a query the engine rejects ranks nothing."""
    from sleuth.errors import QueryError

    def search(queries: list[str]) -> list[list[str]]:
        rankings = []
        for query in queries:
            try:
                rankings.append([h.id for h in engine.search(query, FUSION_DEPTH)])
            except QueryError:
                rankings.append([])
        return rankings

    return search


def raw_question_recall(
    engine: SearchEngine, questions: Sequence[BenchmarkQuestion], k: int
) -> list[float]:
    """Recall@k when the question itself is the query: the baseline a rewrite must beat."""
    scores = []
    for question in questions:
        gold = set(gold_ids(question))
        top = {h.id for h in engine.search(question.question, k)}
        scores.append(len(top & gold) / len(gold))
    return scores


def chat_prompt(question: str, rules: PlatformRules) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_prompt(rules)},
        {"role": "user", "content": question},
    ]


def generate_rewrites(
    model: Any,
    tokenizer: Any,
    questions: Sequence[str],
    rules: PlatformRules,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy rewrites in left-padded batches (batching is what makes 500 questions cheap)."""
    import torch

    outputs: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(questions), batch_size):
            batch = questions[start : start + batch_size]
            texts = [
                tokenizer.apply_chat_template(
                    chat_prompt(q, rules), add_generation_prompt=True, tokenize=False
                )
                for q in batch
            ]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                generated = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = generated[:, encoded["input_ids"].shape[1] :]
            outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
            if progress:
                progress(len(batch))
    finally:
        model.train(was_training)
    return outputs


def rewrite_all(
    model: Any,
    tokenizer: Any,
    questions: Sequence[BenchmarkQuestion],
    config: ExpandConfig,
    when: str,
) -> list[str]:
    from sleuth.progress import progress_bar

    with progress_bar(f"rewrites {when}", len(questions)) as advance:
        return generate_rewrites(
            model,
            tokenizer,
            [q.question for q in questions],
            config.rules,
            config.max_completion_length,
            config.eval_batch_size,
            advance,
        )


def score_rewrites(
    outputs: Sequence[str],
    questions: Sequence[BenchmarkQuestion],
    search: Callable[[list[str]], list[list[str]]],
    rules: PlatformRules,
    k: int,
) -> list[dict[str, Any]]:
    rows = []
    for output, question in zip(outputs, questions, strict=True):
        reward, info = rewrite_reward(output, set(gold_ids(question)), search, rules, k)
        rows.append({"id": question.id, "output": output, "reward": reward, **info})
    return rows


def make_reward_function(
    search: Callable[[list[str]], list[list[str]]], rules: PlatformRules, k: int
) -> Callable[..., list[float]]:
    """The TRL reward function: the engine's Recall@k of the gold ids, minus rule penalties."""

    def engine_recall_reward(prompts, completions, gold_ids, **kwargs) -> list[float]:
        rewards, recalls, broken = [], [], 0
        for completion, gold in zip(completions, gold_ids, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            reward, info = rewrite_reward(text, set(gold), search, rules, k)
            rewards.append(reward)
            recalls.append(info["recall"])
            broken += bool(info["violations"])
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("engine_recall", sum(recalls) / len(recalls))
            log_metric("rule_violation_rate", broken / len(rewards))
        return rewards

    return engine_recall_reward


def vllm_options(config: ExpandConfig) -> dict[str, Any]:
    """TRL's own vLLM generation (GPU only; not exercised on this CPU machine)."""
    if not config.vllm_mode:
        return {}
    if config.vllm_mode not in ("server", "colocate"):
        raise SleuthError(f"vllm mode must be 'server' or 'colocate', not {config.vllm_mode!r}")
    options: dict[str, Any] = {"use_vllm": True, "vllm_mode": config.vllm_mode}
    if config.vllm_server_url:
        options["vllm_server_base_url"] = config.vllm_server_url
    return options


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def train_expand(config: ExpandConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate before/after, write ``results.json`` and ``curve.png``; resumable."""
    from datasets import Dataset

    from sleuth.search.bundled import bundled_index
    from sleuth.search.index_format import open_index
    from sleuth.train.checkpoints import clear_staging, train_resuming
    from sleuth.train.grpo import grpo_args, trainer_class
    from sleuth.train.policy_model import load_trainable
    from sleuth.train.runlog import JsonlLogCallback, read_log

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", config.to_dict())
    clear_staging(out)
    engine = open_index(Path(config.index) if config.index else bundled_index("hotpotqa-1100"))
    search = ranked_ids(engine)
    train_questions = load_split(config, config.train_split, config.train_limit)
    eval_questions = load_split(config, config.eval_split, config.eval_limit)
    model, tokenizer, model_name = load_trainable(config.model)
    sizes = f"{len(train_questions)} training, {len(eval_questions)} held-out questions"
    log(f"model {model_name}; {sizes}")

    baseline_path = out / "before.json"
    if baseline_path.is_file():  # resumed: the untrained evaluation is already done
        before = json.loads(baseline_path.read_text())
    else:
        raw = raw_question_recall(engine, eval_questions, config.k)
        outputs = rewrite_all(model, tokenizer, eval_questions, config, "before training")
        before = {
            "raw_question_recall": _mean(raw),
            "rows": score_rewrites(outputs, eval_questions, search, config.rules, config.k),
        }
        write_json_atomic(baseline_path, before)

    dataset = Dataset.from_list(
        [
            {"prompt": chat_prompt(q.question, config.rules), "gold_ids": gold_ids(q)}
            for q in train_questions
        ]
    )
    args = grpo_args(
        out,
        steps=config.steps,
        questions_per_step=config.questions_per_step,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        learning_rate=config.learning_rate,
        beta=config.beta,
        temperature=config.temperature,
        save_steps=config.save_steps,
        seed=config.seed,
        **vllm_options(config),
    )
    Trainer = trainer_class()
    trainer = Trainer(
        model=model,
        reward_funcs=make_reward_function(search, config.rules, config.k),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(out / "train_log.jsonl")],
    )
    train_seconds = train_resuming(trainer, out, log)

    outputs = rewrite_all(trainer.model, tokenizer, eval_questions, config, "after training")
    after_rows = score_rewrites(outputs, eval_questions, search, config.rules, config.k)
    history = read_log(out / "train_log.jsonl")
    results = summarise(config, model_name, before, after_rows, history, train_seconds)
    write_json_atomic(out / "after.json", {"rows": after_rows})
    write_json_atomic(out / "results.json", results)
    (out / "curve.png").write_bytes(learning_curve(history))
    return results


def summarise(
    config: ExpandConfig,
    model_name: str,
    before: dict[str, Any],
    after_rows: list[dict[str, Any]],
    history: list[dict[str, Any]],
    train_seconds: float,
) -> dict[str, Any]:
    def recall(rows: list[dict[str, Any]]) -> float:
        return _mean([r["recall"] for r in rows])

    def violation_rate(rows: list[dict[str, Any]]) -> float:
        return _mean([1.0 if r["violations"] else 0.0 for r in rows])

    rewards = [r["reward"] for r in history if "reward" in r]
    reward_std = [r.get("reward_std", 0.0) for r in history if "reward" in r]
    return {
        "model": model_name,
        "k": config.k,
        "eval_questions": len(after_rows),
        f"recall@{config.k}": {
            "raw_question": before["raw_question_recall"],
            "untrained_rewrites": recall(before["rows"]),
            "trained_rewrites": recall(after_rows),
        },
        "rule_violation_rate": {
            "untrained": violation_rate(before["rows"]),
            "trained": violation_rate(after_rows),
        },
        "training": {
            "steps": len(rewards),
            "seconds": round(train_seconds, 1),
            "reward_first5": _mean(rewards[:5]),
            "reward_last5": _mean(rewards[-5:]),
            "mean_within_group_reward_std": _mean(reward_std),
        },
        "config": config.to_dict(),
    }


def learning_curve(
    history: list[dict[str, Any]],
    series: tuple[tuple[str, str], ...] = (
        ("reward", "reward"),
        ("engine_recall", "engine Recall@k"),
    ),
    title: str = "Query-rewrite training on engine feedback",
) -> bytes:
    """``series`` (log key, label) per step, with a moving average (PNG bytes)."""
    import io

    from matplotlib.figure import Figure

    steps = [r["step"] for r in history if "reward" in r]
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.subplots()
    for key, label in series:
        values = [r.get(key, r.get(f"rewards/{key}", 0.0)) for r in history if "reward" in r]
        if not any(values):
            continue
        axes.plot(steps, values, alpha=0.35, label=f"{label} (per step)")
        window = max(1, len(values) // 10)
        smooth = [_mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
        axes.plot(steps, smooth, label=f"{label} (moving average)")
    axes.set_xlabel("GRPO step")
    axes.set_ylabel("value")
    axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
