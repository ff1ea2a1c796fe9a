"""The readable summary of a comparison of two models (``vision-eval compare``).

Every difference has the spec's sign, A - B, the bootstrap intervals
included. The metrics come in the order of the task's ``compared_metrics``
(``vocab.tasks``), then any other the daemon sent. McNemar's exact test on
the images one model gets right and the other wrong (``statistics.mcnemar``,
classification) is shown under the intervals. Parts of the statistics of an
unknown shape are still shown, as tables or lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vision_eval.formats import count, metric, ms, p_value, signed, task_of
from vision_eval.text_table import fmt, paragraph, table

KNOWN_STATISTICS = {"metrics", "per_class", "flips", "mcnemar", "n_images", "n_resamples", "seed", "alpha", "weights"}


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _interval(s: Mapping[str, Any], digits: int = 4) -> list[str]:
    """The 'CI (A-B)', 'P' and 'SIGNIFICANT' cells of a statistics row (its interval is of a - b)."""
    lo, hi = s.get("ci_low"), s.get("ci_high")
    ci = f"[{signed(lo, digits)}, {signed(hi, digits)}]" if _real(lo) and _real(hi) else "-"
    return [ci, p_value(s.get("p_value")), fmt(s.get("significant")) if "significant" in s else "-"]


def _better(diff: Any) -> str:
    """Who wins on a higher-is-better metric, from its A - B difference."""
    if not _real(diff):
        return "-"
    return "tie" if diff == 0 else ("A" if diff > 0 else "B")


def _metric_rows(r: Mapping[str, Any], per_metric: Mapping[str, Any]) -> list[list[str]]:
    compared = task_of(r).compared_metrics
    names = [m for m in compared if m in r["metrics"]] + [m for m in r["metrics"] if m not in compared]
    rows = []
    for name in names:
        m, timed = r["metrics"][name], name.endswith("_ms")
        value = ms if timed else metric
        diff = signed(m.get("diff"), 1 if timed else 4) + (" ms" if timed and _real(m.get("diff")) else "")
        row = [name, value(m.get("a")), value(m.get("b")), diff, {"a": "A", "b": "B"}.get(m.get("better"),
                                                                                          fmt(m.get("better")))]
        rows.append(row + (_interval(per_metric.get(name) or {}, 1 if timed else 4) if per_metric else []))
    for name, s in per_metric.items():  # bootstrapped metrics the spec's table lacks (accuracy_score)
        if name not in r["metrics"] and isinstance(s, Mapping):
            rows.append([name, metric(s.get("a")), metric(s.get("b")), signed(s.get("diff")), _better(s.get("diff")),
                         *_interval(s)])
    return rows


def _mcnemar(stats: Mapping[str, Any] | None, width: int | None) -> list[str]:
    mc = (stats or {}).get("mcnemar")
    if not isinstance(mc, Mapping):
        return []
    significant = mc.get("significant")
    verdict = "significance unknown" if significant is None else ("significant" if significant else "not significant")
    return [paragraph(f"McNemar's exact test: {count(mc.get('b'), 'image')} right only with A (b), "
                      f"{count(mc.get('c'), 'image')} right only with B (c); p {p_value(mc.get('p_value'))}, "
                      f"{verdict}", width)]


def render_compare(r: Mapping[str, Any], width: int | None = None) -> str:
    stats = r.get("statistics") if isinstance(r.get("statistics"), Mapping) else None
    found = (stats or {}).get("metrics")
    per_metric: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    level = f"{1 - stats['alpha']:.0%}" if stats and _real(stats.get("alpha")) else "95%"
    headers = ["METRIC", "A", "B", "DIFF (A-B)", "BETTER"]
    if per_metric:
        headers += [f"{level} CI (A-B)", "P", "SIGNIFICANT"]
    winner = r.get("winner")
    parts = [paragraph(f"A = {r['model_a']}", width), paragraph(f"B = {r['model_b']}", width)]
    if r.get("task"):
        parts.append(f"task {task_of(r).name}")
    if r.get("dataset"):
        parts.append(paragraph(f"dataset {r['dataset']}", width))
    parts += ["", table(headers, _metric_rows(r, per_metric), width=width, wrap_at=None), *_mcnemar(stats, width), "",
              f"winner: {winner if winner else 'undecided (a score is missing)'}"
              + (f" by {r['score_diff']:.4f} score" if r.get("score_diff") and winner != "tie" else "")]
    parts += _render_errors(r.get("errors"), width)
    if stats is None:
        parts.append(paragraph("(no bootstrap statistics: compare with --resamples N > 0 for intervals and flips)",
                               width))
    else:
        parts += _render_statistics(stats, level, "mAP50" in task_of(r).metrics, width)
    return "\n".join(parts)


def _render_errors(errors: Any, width: int | None) -> list[str]:
    """Both error breakdowns side by side, and what changed (``localization errors 412 -> 170``)."""
    if not isinstance(errors, Mapping):
        return []
    if not errors.get("available"):
        return ["", paragraph(f"error breakdown: {errors.get('detail', 'unavailable')}", width)]
    rows = [[k, r["a"], r["b"], f"{r['diff']:+d}" if isinstance(r["diff"], int) else "-"]
            for k, r in errors["rows"].items()]
    return ["", paragraph("errors at each model's operating point (the error types of docs/metrics.md):", width),
            table(["COUNT", "A", "B", "DIFF (A-B)"], rows, width=width),
            paragraph("changed: " + ("; ".join(errors["changes"]) or "nothing"), width)]


def _render_statistics(stats: Mapping[str, Any], level: str, boxes: bool, width: int | None) -> list[str]:
    """The paired-bootstrap part of a comparison beyond the per-metric intervals (``boxes``: the task's
    per-class statistic is AP50)."""
    parts = ["", paragraph(f"paired bootstrap: {stats.get('n_resamples', '?')} resamples of "
                           f"{stats.get('n_images', '?')} images (seed {stats.get('seed', '?')}), {level} percentile "
                           "intervals", width)]
    per_class = stats.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        rows = [[name, s.get("support"), metric(s.get("a")), metric(s.get("b")), signed(s.get("diff")), *_interval(s)]
                for name, s in per_class.items()]
        parts += ["", "per-class AP50:" if boxes else "per class:",
                  table(["CLASS", "SUPPORT", "A", "B", "DIFF (A-B)", f"{level} CI (A-B)", "P", "SIGNIFICANT"], rows,
                        width=width, wrap_at=0)]
    flips = stats.get("flips")
    if isinstance(flips, Mapping) and "error" in flips:
        parts += ["", paragraph(f"flip table unavailable: {flips['error']}", width)]
    elif isinstance(flips, Mapping) and flips:
        rows = [[name, f.get("total"), f.get("found_a"), f.get("found_b"), f.get("a_only"), f.get("b_only"),
                 ", ".join(f.get("examples_a_only") or []) or "-", ", ".join(f.get("examples_b_only") or []) or "-"]
                for name, f in flips.items() if isinstance(f, Mapping)]
        parts += ["", paragraph("objects found by one model only (flips):", width),
                  table(["CLASS", "OBJECTS", "FOUND_A", "FOUND_B", "A_ONLY", "B_ONLY", "E.G. A ONLY", "E.G. B ONLY"],
                        rows, width=width)]
    for key, value in stats.items():
        if key not in KNOWN_STATISTICS:
            parts += _render_any(key, value, width)
    return parts


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _render_any(title: str, value: Any, width: int | None, depth: int = 0) -> list[str]:
    """Readable lines for a statistics part of unknown shape: tables for lists or maps of rows."""
    label = title.replace("_", " ")
    if _scalar(value):
        return [paragraph(f"{label}: {fmt(value)}", width)]
    if isinstance(value, list) and all(_scalar(v) for v in value):
        return [paragraph(f"{label}: {', '.join(fmt(v) for v in value)}", width)]
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        keys = list(dict.fromkeys(k for row in value for k, v in row.items() if _scalar(v)))
        return [f"{label}:", table([k.upper() for k in keys], [[row.get(k) for k in keys] for row in value],
                                   width=width)]
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()) and all(
            all(_scalar(x) for x in v.values()) for v in value.values()):
        keys = list(dict.fromkeys(k for row in value.values() for k in row))
        return [f"{label}:", table(["", *(k.upper() for k in keys)],
                                   [[name, *(row.get(k) for k in keys)] for name, row in value.items()], width=width)]
    if isinstance(value, Mapping) and depth < 3:
        lines = [f"{label}:"] if value else [f"{label}: (empty)"]
        inner = None if width is None else width - 2
        for k, v in value.items():
            lines += ["  " + line for block in _render_any(k, v, inner, depth + 1) for line in block.splitlines()]
        return lines
    return [paragraph(f"{label}: {json.dumps(value)}", width)]
