"""``report.json`` and a self-contained ``report.html`` for a run folder.

The HTML has no external assets (figures are inline base64 PNG) so it can be mailed or archived.
Questions, answers and retrieved text are untrusted: every such string goes through
``html.escape`` before it reaches the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from pathlib import Path
from typing import Any

from sleuth.agent.trajectory import Trajectory, TrajectoryFormatError
from sleuth.errors import SleuthError
from sleuth.evaluate.plots import accuracy_chart, factorised_chart, searches_vs_accuracy_chart
from sleuth.evaluate.provenance import engine_provenance, step_sources
from sleuth.evaluate.records import ResultLog
from sleuth.evaluate.runner import (
    CONFIG_FILE,
    RESULTS_FILE,
    TRAJECTORIES_FILE,
)
from sleuth.evaluate.summary import (
    LABELS,
    best_rag,
    best_rag_line,
    summarize,
    with_answer_fields,
)
from sleuth.evaluate.versus import versus_baseline
from sleuth.jsonio import read_jsonl_objects, warn_line, write_json_atomic
from sleuth.metrics import SHORT_ANSWER_WORDS

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
MAX_EMBEDDED_TRAJECTORIES = 2000
MAX_OBSERVATION_CHARS = 2000
# The embedded trajectories' share of report.html: a 45-turn episode renders to ~75 kB, so
# 2000 of them would make a 150 MB page; past this size the rest stay in trajectories.jsonl.
MAX_EMBEDDED_CHARS = 30_000_000


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's configuration and its result records; a clear error if it is not a run."""
    folder = Path(run_dir).expanduser()
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise SleuthError(f"{folder}: not an evaluation run (no {CONFIG_FILE})")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SleuthError(f"{config_path}: corrupt run configuration ({exc})") from None
    return config, ResultLog(folder / RESULTS_FILE).read()


def read_trajectories(
    path: Path, wanted: set[str], damaged: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Trajectory dicts by episode id; a retried episode's last attempt wins (failures are
    retried on resume, successes never are). A damaged line (torn by a crash, or a wanted
    trajectory of the wrong shape) is skipped with a warning naming the file and line: the
    episode is then shown without its trajectory (``damaged`` gets ``{episode id: "FILE:LINE:
    reason"}``), and everything else still loads."""
    found: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return found
    for number, data in read_jsonl_objects(path, "a trajectory"):
        episode = data.get("episode_id")
        if not isinstance(episode, str) or episode not in wanted:
            continue
        try:
            Trajectory.from_dict(data)
        except TrajectoryFormatError as exc:
            warn_line(path, number, f"skipped the damaged trajectory of {episode!r}: {exc}")
            if damaged is not None:
                damaged[episode] = f"{path}:{number}: {exc}"
            continue
        found[episode] = data
    return found


def build_report(run_dir: str | Path) -> dict[str, Any]:
    config, records = load_run(run_dir)
    methods = config.get("methods", [])
    summary = summarize(records, methods)
    best = best_rag(summary, (config.get("budget") or {}).get("top_k"))
    return {
        "run": str(Path(run_dir)),
        "benchmark": config.get("benchmark"),
        "model": config.get("model"),
        "search": config.get("search"),
        "judge": config.get("judge"),
        "reader": config.get("reader"),
        "versions": config.get("versions"),
        "index_manifest": config.get("index_manifest"),
        "budget": config.get("budget"),
        "episodes": len(records),
        "short_answer_words": SHORT_ANSWER_WORDS,
        "methods": summary,
        "best_rag": best,
        "versus": versus_baseline(records, best),
        "results": [with_answer_fields(r) for r in records],
        "observations_by_engine": engine_provenance(
            read_trajectories(
                Path(run_dir).expanduser() / TRAJECTORIES_FILE, {r["episode_id"] for r in records}
            ).values()
        ),
    }


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into the run folder (atomically)."""
    folder = Path(run_dir).expanduser()
    report = build_report(folder)
    if not report["results"]:
        raise SleuthError(f"{folder}: the run has no results yet")
    json_path, html_path = folder / REPORT_JSON, folder / REPORT_HTML
    write_json_atomic(json_path, report)
    wanted = [r["episode_id"] for r in report["results"]][:MAX_EMBEDDED_TRAJECTORIES]
    trajectories = read_trajectories(folder / TRAJECTORIES_FILE, set(wanted))
    page = render_html(report, within_page_size(trajectories, wanted))
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)
    return json_path, html_path


# ---- HTML ---------------------------------------------------------------------------------

# Fits a 1400 px window: the page is at most 1320 px wide and the per-question table has a
# fixed layout whose columns wrap (long ids and answers break anywhere) instead of overflowing.
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1320px;padding:0 1em;
color:#222;line-height:1.35}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ci{color:#777;font-size:85%}.ok{color:#2e7d32}.bad{color:#c62828}.note{color:#555}
details{border:1px solid #ddd;margin:.5em 0;padding:.3em .6em;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere}
details:target,details.opened{border-color:#1565c0;box-shadow:0 0 0 2px #90caf9}
img{max-width:100%;margin:.5em 1em .5em 0}
.settings th{width:16em;font-weight:normal;color:#555}
.questions table{width:100%;table-layout:fixed;font-size:90%}
.questions td,.questions th{padding:3px 5px;overflow-wrap:anywhere;word-break:break-word}
.questions th{position:sticky;top:0;overflow-wrap:normal;word-break:normal;font-size:92%}
.clip{max-height:6.75em;overflow:auto}
"""

# Opens the <details> a trajectory link points at (on click, on load with a #hash, on
# hashchange). Ids are hex digests made here, never text from the run.
SCRIPT = """
function openTarget(id){var el=document.getElementById(id);
if(el&&el.tagName==='DETAILS'){el.open=true;el.classList.add('opened');el.scrollIntoView();}}
document.addEventListener('click',function(e){var a=e.target.closest('a.traj');
if(a){openTarget(a.getAttribute('href').slice(1));}});
window.addEventListener('hashchange',function(){openTarget(location.hash.slice(1));});
if(location.hash){openTarget(location.hash.slice(1));}
"""

# Column widths of the per-question table, in percent of the page width (sum 100).
QUESTION_COLUMNS = [
    ("id", 6),
    ("question", 13),
    ("method", 8),
    ("seed", 4),
    ("prediction", 12),
    ("gold", 9),
    ("EM", 3),
    ("F1", 4),
    ("cover", 4),
    (f"cover ≤{SHORT_ANSWER_WORDS}w", 4),
    ("words", 4),
    ("judge", 4),
    ("recall", 4),
    ("category", 8),
    ("searches", 6),
]
QUESTION_LINK_WIDTH = 100 - sum(width for _, width in QUESTION_COLUMNS)

NO_EVIDENCE_NOTE = (
    "No “where answers fail” breakdown: this benchmark has no gold evidence (the supporting "
    "paragraphs of each answer), so whether the search found enough cannot be measured. "
    "Benchmarks with supporting facts (hotpotqa-1100) fill this section."
)

METRIC_NOTES = (
    "<p class='note'>Mean with 95% interval. <b>cover-EM</b> (the R1-Searcher metric) counts "
    "an answer as right when it contains a gold answer and names no rival beside it: "
    "“Levertov or Pekar” and “Pekar, Levertov” score 0, but a long answer that names "
    "both candidates of a comparison question in a sentence (“Harvey Pekar was born earlier "
    "than Denise Levertov”, gold “Denise Levertov”) still scores 1. "
    f"<b>cover-EM ≤{SHORT_ANSWER_WORDS} words</b> gives credit only to answers of at most "
    f"{SHORT_ANSWER_WORDS} words; a large gap between the two means long answers. "
    "<b>answer words</b>: mean length of the answers given. <b>no answer</b>: share of episodes "
    "that ended without an answer (invalid actions, turn or search budget spent); they score 0 "
    "on every answer metric but are not wrong answers, so read low scores together with this "
    "column.</p>"
)


def anchor(episode_id: str) -> str:
    """A safe HTML id for an episode (question ids are arbitrary strings)."""
    return "traj-" + hashlib.sha1(episode_id.encode("utf-8")).hexdigest()[:16]


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def _cell(metric: dict[str, Any], digits: int = 3) -> str:
    mean, low, high = metric["mean"], metric["low"], metric["high"]
    if mean is None:
        return '<td class="num">–</td>'
    ci = ""
    if low is not None and high is not None:
        ci = f' <span class="ci">[{low:.{digits}f}, {high:.{digits}f}]</span>'
    return f'<td class="num" title="{escape(metric["ci"])}">{mean:.{digits}f}{ci}</td>'


def _table(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


ANSWER_COLUMNS = ("em", "f1", "cover_em", "cover_em_short", "answer_words", "no_answer")


def _summary_tables(methods: dict[str, dict[str, Any]]) -> str:
    answer_rows, factor_rows, cost_rows = [], [], []
    for method, data in methods.items():
        m = data["metrics"]
        name = f"<td>{escape(method)}</td>"
        answer_rows.append(
            f"<tr>{name}<td class='num'>{data['episodes']}</td>"
            f"<td class='num'>{data['failures']}</td>"
            + "".join(_cell(m[k], 1 if k == "answer_words" else 3) for k in ANSWER_COLUMNS)
            + "".join(_cell(m[k]) for k in ("judge", "evidence_recall", "read_recall"))
            + "</tr>"
        )
        f = data["factorised"]
        counts = ", ".join(f"{escape(k)} {v}" for k, v in f["counts"].items() if v)
        factor_rows.append(
            f"<tr>{name}"
            + "".join(
                f"<td class='num'>{_num(f[k])}</td>"
                for k in ("search_sufficiency", "knowledge_utilisation", "refusal", "hallucination")
            )
            + f"<td>{counts}</td></tr>"
        )
        cost_rows.append(
            f"<tr>{name}"
            + "".join(
                _cell(m[k], 2)
                for k in (
                    "searches",
                    "documents_read",
                    "model_calls",
                    "reader_calls",
                    "critic_calls",
                    "turns",
                )
            )
            + _cell(m["tokens"], 0)
            + _cell(m["seconds"], 2)
            + "</tr>"
        )
    answers = _table(
        ["method", "episodes", "failures"]
        + [LABELS[k] for k in ANSWER_COLUMNS]
        + ["judge", "evidence recall", "read recall"],
        answer_rows,
    )
    factorised = _table(
        [
            "method",
            LABELS["search_sufficiency"],
            LABELS["knowledge_utilisation"],
            LABELS["refusal"],
            LABELS["hallucination"],
            "episodes per category",
        ],
        factor_rows,
    )
    cost_columns = [
        "method",
        "searches",
        "documents read",
        "model calls",
        "reader calls",
        "critic calls",
    ]
    costs = _table([*cost_columns, "turns", "tokens", "seconds"], cost_rows)
    has_evidence = any(sum(d["factorised"]["counts"].values()) for d in methods.values())
    factor_text = (
        "<p>Search sufficiency = all gold paragraphs were retrieved; knowledge use = correct "
        "(cover-EM) given sufficient evidence; refusal = declined given insufficient evidence; "
        "hallucination = answered wrongly given insufficient evidence.</p>" + factorised
        if has_evidence
        else f"<p class='note'>{escape(NO_EVIDENCE_NOTE)}</p>"
    )
    return (
        "<h2>Answers and evidence</h2>"
        + METRIC_NOTES
        + answers
        + "<h2>Factorised diagnostics</h2>"
        + factor_text
        + "<h2>Efficiency (per question)</h2>"
        + costs
        + _clarification_html(methods)
    )


CLARIFICATION_NOTE = (
    "The questions say which are ambiguous (a constraint removed by `sleuth synth ambiguous`) "
    "and which are clear. Ask rate: share of episodes with at least one ask; ask precision: "
    "asked episodes that were ambiguous; ask recall: ambiguous episodes that asked; intent "
    "recovery: share of the removed constraint's words found in the agent's queries or answer "
    "after its first ask (the whole episode when it never asked). docs/clarification.md"
)


def _clarification_html(methods: dict[str, dict[str, Any]]) -> str:
    from sleuth.evaluate.clarify import CLARIFICATION_LABELS

    rows = []
    for method, data in methods.items():
        c = data.get("clarification")
        if not c:
            continue
        replies = ", ".join(f"{escape(k)} {v}" for k, v in c["user_replies"].items())
        rows.append(
            f"<tr><td>{escape(method)}</td>"
            f"<td class='num'>{c['ambiguous_episodes']}/{c['clear_episodes']}</td>"
            + "".join(f"<td class='num'>{_num(c[k])}</td>" for k in CLARIFICATION_LABELS)
            + f"<td>{replies or '–'}</td></tr>"
        )
    if not rows:
        return ""
    headers = ["method", "ambiguous/clear", *CLARIFICATION_LABELS.values(), "user replies"]
    return (
        "<h2>Clarification</h2>"
        + f"<p class='note'>{escape(CLARIFICATION_NOTE)}</p>"
        + _table(headers, rows)
    )


VERSUS_NOTE = (
    "Per-method intervals above overlap even when a paired difference is clear; here each "
    "method is compared with {base} on the same questions. Difference: method minus {base}, "
    "with its 95% paired-bootstrap interval (* = excludes 0) and two-sided p. The second table "
    "splits the F1 difference by how much of the gold evidence each read (the documents in "
    "front of the scored answer; older runs: found): a method can win where it completed "
    "evidence {base} had in part, and lose where {base} already had it all; "
    "“of total” is the group's part of the overall difference."
)


def _versus_html(versus: dict[str, Any] | None) -> str:
    if not versus:
        return ""
    base = escape(versus["baseline"])
    rows = [
        f"<tr><td>{escape(r['method'])}</td><td>{escape(LABELS.get(r['metric'], r['metric']))}"
        f"</td><td class='num'>{r['questions']}</td><td class='num'>{r['a']:.3f}</td>"
        f"<td class='num'>{r['b']:.3f}</td><td class='num'>{r['diff']:+.3f}"
        + (" *" if r["significant"] else "")
        + f"</td><td class='num'>[{r['low']:+.3f}, {r['high']:+.3f}]</td>"
        f"<td class='num'>{r['p_value']:.3f}</td></tr>"
        for r in versus["rows"]
    ]
    headers = ["method", "metric", "questions", versus["baseline"], "method's", "difference"]
    html = (
        f"<h2>Against {base}, question by question</h2>"
        + (f"<p class='note'>{escape(versus['chosen'])}</p>" if versus.get("chosen") else "")
        + f"<p class='note'>{VERSUS_NOTE.format(base=base)}</p>"
        + _table([*headers, "95% CI", "p"], rows)
    )
    for method, shifts in versus["shifts"].items():
        shift_rows = [
            f"<tr><td>{escape(s['baseline_evidence'])} → {escape(s['method_evidence'])}</td>"
            f"<td class='num'>{s['questions']}</td><td class='num'>{s['baseline_f1']:.3f}</td>"
            f"<td class='num'>{s['method_f1']:.3f}</td><td class='num'>{s['diff']:+.3f}</td>"
            f"<td class='num'>{s['share']:+.3f}</td></tr>"
            for s in shifts
        ]
        evidence = shifts[0].get("evidence", "found") if shifts else "found"
        shift_headers = [f"gold evidence {evidence}: {versus['baseline']} → {method}", "questions"]
        shift_headers += [f"F1 {versus['baseline']}", f"F1 {method}", "each", "of total"]
        html += f"<h3>Where {escape(method)}'s F1 difference comes from</h3>" + _table(
            shift_headers, shift_rows
        )
    return html


def _figures(methods: dict[str, dict[str, Any]]) -> str:
    has_evidence = any(sum(d["factorised"]["counts"].values()) for d in methods.values())
    charts = [("accuracy per method", accuracy_chart(methods))]
    if has_evidence:
        charts.append(("where answers fail", factorised_chart(methods)))
    charts.append(("searches vs accuracy", searches_vs_accuracy_chart(methods)))
    images = []
    for title, png in charts:
        data = base64.b64encode(png).decode("ascii")
        images.append(f'<img alt="{escape(title)}" src="data:image/png;base64,{data}">')
    note = "" if has_evidence else f"<p class='note'>{escape(NO_EVIDENCE_NOTE)}</p>"
    return "<h2>Figures</h2>" + "".join(images) + note


def _mark(value: Any) -> str:
    if value is None:
        return "–"
    return "<span class='ok'>✓</span>" if value else "<span class='bad'>✗</span>"


def _question_rows(results: list[dict[str, Any]], linked: set[str]) -> str:
    rows = []
    ordered = sorted(results, key=lambda r: (str(r["question_id"]), r["method"], r["seed"]))
    for r in ordered:
        link = (
            f"<a class='traj' href='#{anchor(r['episode_id'])}'>trajectory</a>"
            if r["episode_id"] in linked
            else "in trajectories.jsonl"
        )
        prediction = escape(r["prediction"]) if r["prediction"] is not None else "<i>none</i>"
        if r.get("error"):
            prediction += f"<br><span class='bad'>{escape(r['error'])}</span>"
        rows.append(
            "<tr>"
            f"<td>{escape(str(r['question_id']))}</td>"
            f"<td><div class='clip'>{escape(r['question'])}</div></td>"
            f"<td>{escape(r['method'])}</td><td class='num'>{r['seed']}</td>"
            f"<td><div class='clip'>{prediction}</div></td>"
            f"<td><div class='clip'>{escape(' | '.join(r['gold_answers']))}</div></td>"
            f"<td>{_mark(r['em'])}</td><td class='num'>{r['f1']:.2f}</td>"
            f"<td>{_mark(r['cover_em'])}</td><td>{_mark(r.get('cover_em_short'))}</td>"
            f"<td class='num'>{_num(r.get('answer_words'))}</td><td>{_mark(r.get('judge'))}</td>"
            f"<td class='num'>{_num(r['evidence_recall'], 2)}</td>"
            f"<td>{escape(r.get('category') or '–')}</td><td class='num'>{r['searches']}</td>"
            f"<td>{link}</td></tr>"
        )
    widths = [*(w for _, w in QUESTION_COLUMNS), QUESTION_LINK_WIDTH]
    columns = "".join(f"<col style='width:{w}%'>" for w in widths)
    head = "".join(f"<th>{escape(h)}</th>" for h, _ in QUESTION_COLUMNS) + "<th></th>"
    return (
        "<h2>Per question</h2><div class='questions'><table>"
        f"<colgroup>{columns}</colgroup><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def within_page_size(
    trajectories: dict[str, dict[str, Any]], order: list[str], limit: int = MAX_EMBEDDED_CHARS
) -> dict[str, dict[str, Any]]:
    """The first of ``trajectories`` (in ``order``) whose rendered views fit ``limit``
    characters together: long episodes must not make the page too large to open."""
    kept, total = {}, 0
    for episode_id in order:
        if episode_id in trajectories:
            total += len(_trajectory_html(episode_id, trajectories[episode_id]))
            if total > limit:
                break
            kept[episode_id] = trajectories[episode_id]
    return kept


def _context_note(step: dict[str, Any]) -> str:
    """A step's prompt size under a context budget (``AgentConfig.context_budget``)."""
    if not step.get("context_tokens"):
        return ""
    dropped = step.get("dropped_observations", 0)
    return (
        f"<br><small>prompt {escape(str(step['context_tokens']))} tokens"
        + (f", {escape(str(dropped))} older observations as stubs" if dropped else "")
        + "</small>"
    )


def _trajectory_html(episode_id: str, data: dict[str, Any]) -> str:
    steps = []
    for step in data.get("steps", []):
        hits = ", ".join(escape(str(h.get("id"))) for h in step.get("hits", []))
        observation = str(step.get("observation", ""))[:MAX_OBSERVATION_CHARS]
        reader = "<i>reader:</i> " if step.get("role") == "reader" else ""  # Agent(reader=...)
        steps.append(
            f"<li>{reader}<b>{escape(str(step.get('action')))}</b> "
            f"{escape(str(step.get('argument')))}"
            + (f"<br>hits: {hits}" if hits else "")
            + (f" <i>from {escape(step_sources(step))}</i>" if step_sources(step) else "")
            + (f"<br><i>{escape(observation)}</i>" if step.get("action") == "ask" else "")
            + _context_note(step)
            + (
                f"<br><span class='bad'>{escape(str(step['error']))}</span>"
                if step.get("error")
                else ""
            )
            + f"<details><summary>model output / observation</summary>"
            f"<pre>{escape(str(step.get('model_output', '')))}</pre>"
            f"<pre>{escape(observation)}</pre></details></li>"
        )
    summary = (
        f"{escape(episode_id)} — answer: {escape(str(data.get('answer')))} "
        f"({escape(str(data.get('stop_reason')))}, {len(data.get('steps', []))} steps)"
    )
    return (
        f"<details id='{anchor(episode_id)}'><summary>{summary}</summary>"
        f"<p>{escape(str(data.get('question', '')))}</p><ol>{''.join(steps)}</ol></details>"
    )


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``[("budget.top_k", "3"), ...]``: nested settings as readable key/value pairs."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, inner in value.items():
            pairs += _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value))]
    return [(prefix, "–" if value is None else str(value))]


def _settings_rows(report: dict[str, Any]) -> str:
    pairs = [
        (key, "–" if report.get(key) is None else str(report.get(key)))
        for key in ("benchmark", "model", "search", "judge", "episodes")
    ]
    if report.get("reader"):  # a run with a reader (Agent(reader=...)): which model answered
        pairs.insert(2, ("reader", str(report["reader"])))
    pairs += _flat(report.get("budget") or {}, "budget")
    manifest = report.get("index_manifest") or {}
    if manifest.get("engine"):
        corpus = manifest.get("corpus") or {}
        pairs.append(
            (
                "index",
                f"{manifest['engine']} over {corpus.get('documents', '?')} documents "
                f"from {corpus.get('source') or '?'}",
            )
        )
    for source, seen in (report.get("observations_by_engine") or {}).items():
        labels = ", ".join(f"{n} {label}" for label, n in seen["labels"].items())
        pairs.append((f"hits from {source}", f"{seen['hits']} in {seen['steps']} steps ({labels})"))
    versions = report.get("versions") or {}
    if versions:
        pairs.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)))
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f"<div class='settings'><table>{rows}</table></div>"


def render_html(report: dict[str, Any], trajectories: dict[str, dict[str, Any]]) -> str:
    embedded = "".join(
        _trajectory_html(r["episode_id"], trajectories[r["episode_id"]])
        for r in report["results"]
        if r["episode_id"] in trajectories
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Sleuth evaluation — {escape(str(report.get('benchmark')))}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Sleuth evaluation: {escape(str(report.get('benchmark')))}</h1>"
        "<h2>Settings</h2>"
        + _settings_rows(report)
        + _summary_tables(report["methods"])
        + (f"<p>{escape(line)}</p>" if (line := best_rag_line(report.get("best_rag"))) else "")
        + _versus_html(report.get("versus"))
        + _figures(report["methods"])
        + _question_rows(report["results"], set(trajectories))
        + "<h2>Trajectories</h2>"
        + embedded
        + f"<script>{SCRIPT}</script></body></html>"
    )
