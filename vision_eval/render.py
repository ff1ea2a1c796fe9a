"""The readable summaries ``vision-eval`` prints (``--json`` prints the daemon's JSON instead).

Every table goes through ``text_table.table`` (cells capped with an
ellipsis, wide characters counted as two cells). Comparisons print every
difference with the spec's sign, A - B, the bootstrap intervals included.
"""

from __future__ import annotations

import json
from typing import Any

from vision_eval.text_table import fmt, table


def _version(v: Any) -> str:
    return f"v{v}" if v is not None else "-"


def render_leaderboard(rows: list[dict[str, Any]]) -> str:
    return table(
        ["RANK", "MODEL", "VERSION", "SCORE", "mAP50", "mAP50_95", "P", "R", "F1", "SMALL_R", "INF_MS", "DATASET",
         "EVALUATED"],
        [[r["rank"], r["model_name"], _version(r.get("version")), r["score"], r["mAP50"], r["mAP50_95"],
          r["precision"], r["recall"], r["f1"], r["small_object_recall"], fmt(r["inference_ms"], 1),
          r["dataset"] + (" (earlier content)" if r.get("current_content") is False else ""),
          r["timestamp"]] for r in rows],
        empty="no evaluations yet",
    )


def render_history(rows: list[dict[str, Any]]) -> str:
    return table(
        ["EVAL", "EVALUATED", "VERSION", "SCORE", "mAP50", "mAP50_95", "F1", "SMALL_R", "INF_MS", "IMGSZ", "TRIGGER",
         "JOB", "DATASET"],
        [[r["eval_id"], r["timestamp"], _version(r.get("version")), r["score"], r["mAP50"], r["mAP50_95"], r["f1"],
          r["small_object_recall"], fmt(r["inference_ms"], 1), r.get("imgsz"), r.get("trigger"), r.get("job_id"),
          r["dataset"]] for r in rows],
    )


def _subject(job: dict[str, Any]) -> str:
    """What a job was about, as far as the public job shows it (its result)."""
    result = job.get("result") or {}
    if "model_a" in result:
        return f"{result['model_a']} vs {result['model_b']}"
    if result.get("model_name"):
        return result["model_name"] + (f" v{result['version']}" if result.get("version") else "")
    return ""


def render_jobs(reply: dict[str, Any]) -> str:
    rows = []
    for j in reply["jobs"]:
        note = j.get("error") or _subject(j)
        rows.append([j["job_id"], j["kind"], j["status"], f"{(j.get('progress') or 0) * 100:.0f}%",
                     j["created_at"], j.get("completed_at"), note[:70]])
    return table(["JOB", "KIND", "STATUS", "PROGRESS", "CREATED", "FINISHED", "MODEL / ERROR"], rows,
                 empty="no jobs")


def render_cancelled(job: dict[str, Any]) -> str:
    if job["status"] == "running":
        return f"job {job['job_id']}: cancel requested; it stops shortly"
    return f"job {job['job_id']}: {job['status']}"


def render_models(listing: dict[str, Any]) -> str:
    rows = []
    for m in listing["models"]:
        latest = m.get("latest_evaluation") or {}
        rows.append([m["name"], ",".join(f"v{v}" for v in m["version_numbers"]) or "-",
                     "yes" if m["has_current"] else "no", m.get("size_mb"),
                     latest.get("score"), latest.get("timestamp"), latest.get("dataset")])
    return table(["MODEL", "VERSIONS", "CURRENT", "SIZE_MB", "LAST_SCORE", "LAST_EVALUATED", "DATASET"], rows,
                 empty="no models in the models folder")


def _sha(sha: Any) -> str:
    return sha[:12] if isinstance(sha, str) else "-"


def render_model(m: dict[str, Any]) -> str:
    current = m.get("current")
    if current is None:
        holds = "none"
    else:
        holds = f"{_version(current.get('version'))} (sha256 {_sha(current.get('sha256'))})"
        if current.get("version") is None:
            holds = f"sha256 {_sha(current.get('sha256'))} (no v<n>.pt has these bytes)"
    parts = [f"model    {m['name']}", f"folder   {m['path']}", f"current  {holds}", "",
             "versions:",
             table(["VERSION", "SIZE_MB", "SHA256", "CURRENT", "ONNX"],
                   [[_version(v["version"]), fmt(v.get("size_mb"), 1), _sha(v.get("sha256")),
                     "*" if current and v.get("sha256") == current.get("sha256") else "", v.get("onnx") or "-"]
                    for v in m["versions"]]),
             "", "evaluations (newest first):",
             table(["EVAL", "EVALUATED", "VERSION", "SCORE", "mAP50", "mAP50_95", "F1", "DATASET"],
                   [[e["eval_id"], e["timestamp"], _version(e.get("version")), e["score"], e["mAP50"], e["mAP50_95"],
                     e["f1"], e["dataset"]] for e in m.get("evaluations", [])]),
             "", "promotion decisions (newest first):",
             table(["ID", "WHEN", "DECISION", "BY", "VERSION", "NEW_SCORE", "OLD_SCORE", "REASON"],
                   [[p["id"], p["timestamp"], p["decision"], p["actor"], _version(p.get("version")),
                     p.get("new_score"), p.get("previous_score"), p["reason"]] for p in m.get("promotions", [])])]
    if m.get("skipped"):
        parts += ["", "skipped checkpoints:", table(["PATH", "SINCE", "REASON"],
                                                    [[s["path"], s["created_at"], s["reason"]] for s in m["skipped"]])]
    if m.get("checkpoints"):
        parts += ["", "checkpoints the watcher queued:",
                  table(["PATH", "SHA256", "STATE", "FAILURES", "NEXT_RETRY", "LAST_ERROR"],
                        [[c["path"], _sha(c.get("sha256")), c["state"], c.get("attempts"),
                          c.get("next_retry_at") or "-", c.get("last_error") or "-"] for c in m["checkpoints"]])]
    if m.get("waiting"):
        parts += ["", "waiting to settle:", table(["PATH", "WAITING_S", "WHY"],
                                                  [[w["path"], w["waiting_s"], w["reason"]] for w in m["waiting"]])]
    return "\n".join(parts)


def render_decision(name: str, d: dict[str, Any]) -> str:
    """A manual promotion or a rollback, as the daemon recorded it."""
    what = "rolled back" if d["decision"] == "rollback" else d["decision"]
    return (f"{name}: {what}; current.pt now holds {_version(d.get('version'))} (sha256 {_sha(d.get('new_sha256'))}),"
            f" previously sha256 {_sha(d.get('previous_sha256'))}\nreason: {d.get('reason')}")


def render_eval(r: dict[str, Any]) -> str:
    version = f" v{r['version']}" if r.get("version") else ""
    head = [
        f"model       {r.get('model_name')}{version}{'  (cached result)' if r.get('cached') else ''}",
        f"checkpoint  {r.get('model_path')} (sha256 {_sha(r.get('checkpoint_sha256'))})",
        f"dataset     {r.get('dataset')} ({r.get('images', '?')} images)",
        f"settings    imgsz {r.get('imgsz')}, batch {r.get('batch')}, device {r.get('device')}, "
        f"ultralytics {r.get('ultralytics_version')}",
        f"eval id     {r.get('eval_id')}",
    ]
    rows = [[m, r.get(m)] for m in ("score", "mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold")]
    for size in ("small", "medium", "large"):
        found, total = r.get(f"{size}_object_found"), r.get(f"{size}_object_count")
        count = f"{found}/{total} found" if total is not None else ""
        rows.append([f"{size}_object_recall", r.get(f"{size}_object_recall"), count])
    spread = (f"IQR {fmt(r.get('inference_ms_iqr'), 1)} over {r['inference_batches']} batches (warm-up left out)"
              if r.get("inference_batches") else "")
    rows += [["inference_ms", fmt(r.get("inference_ms"), 1), spread]]
    rows += [[m, fmt(r.get(m), 1), ""] for m in ("preprocess_ms", "postprocess_ms")]
    rows.append(["model_size_mb", fmt(r.get("model_size_mb"), 1), ""])
    parts = [*head, "", table(["METRIC", "VALUE", ""], [row + [""] * (3 - len(row)) for row in rows])]
    per_class = r.get("per_class_metrics") or {k: {"ap50": v} for k, v in (r.get("per_class") or {}).items()}
    if per_class:
        parts += ["", table(["CLASS", "AP50", "AP50_95", "P", "R", "SUPPORT"],
                            [[name, c.get("ap50"), c.get("ap50_95"), c.get("precision"), c.get("recall"),
                              c.get("support")] for name, c in per_class.items()])]
    if r.get("weights"):
        parts += ["", "score weights: " + ", ".join(f"{k} {v:.3g}" for k, v in r["weights"].items())]
    parts += [f"warning: {w}" for w in r.get("warnings") or []]
    if r.get("promotion"):
        p = r["promotion"]
        parts.append(f"promotion: {p['decision']}: {p['reason']}")
    return "\n".join(parts)


def render_train(r: dict[str, Any]) -> str:
    parts = [f"trained     {r['model_name']} v{r['version']} ({r.get('epochs')} epochs)",
             f"checkpoint  {r['checkpoint']} (sha256 {_sha(r.get('checkpoint_sha256'))})",
             f"onnx        {r.get('onnx') or 'not exported: ' + str(r.get('onnx_error'))}",
             f"pipeline    {r.get('pipeline')}"]
    training = {k: v for k, v in (r.get("training") or {}).items() if not isinstance(v, (dict, list))}
    if training:
        parts += ["", "final training metrics:", table(["METRIC", "VALUE"], [[k, v] for k, v in training.items()])]
    if r.get("evaluation"):
        parts += ["", "evaluation:", render_eval(r["evaluation"])]
    if r.get("promotion"):
        p = r["promotion"]
        parts.append(f"promotion: {p['decision']}: {p['reason']}")
    return "\n".join(parts)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: Any) -> float | None:
    return float(v) if _number(v) else None


def _interval(s: dict[str, Any]) -> list[str]:
    """The '95% CI (A-B)', 'P' and 'SIGNIFICANT' cells of a statistics row (its interval is of a - b)."""
    lo, hi = _num(s.get("ci_low")), _num(s.get("ci_high"))
    ci = f"[{lo:+.4f}, {hi:+.4f}]" if _number(lo) and _number(hi) else "-"
    p = _num(s.get("p_value"))
    p_cell = "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
    return [ci, p_cell, fmt(s.get("significant")) if "significant" in s else "-"]


def _better(diff: Any) -> str:
    """Who wins on a higher-is-better metric, from its A - B difference."""
    if not _number(diff):
        return "-"
    return "tie" if diff == 0 else ("A" if diff > 0 else "B")


def render_compare(r: dict[str, Any]) -> str:
    stats = r.get("statistics") if isinstance(r.get("statistics"), dict) else None
    per_metric = (stats or {}).get("metrics") if isinstance((stats or {}).get("metrics"), dict) else {}
    level = f"{1 - stats['alpha']:.0%}" if stats and _number(stats.get("alpha")) else "95%"
    headers = ["METRIC", "A", "B", "DIFF (A-B)", "BETTER"]
    if per_metric:
        headers += [f"{level} CI (A-B)", "P", "SIGNIFICANT"]
    rows = []
    for name, m in r["metrics"].items():
        digits = 1 if name == "inference_ms" else 4
        row = [name, fmt(m["a"], digits), fmt(m["b"], digits),
               "-" if m["diff"] is None else f"{m['diff']:+.{digits}f}",
               {"a": "A", "b": "B"}.get(m["better"], fmt(m["better"]))]
        rows.append(row + (_interval(per_metric.get(name) or {}) if per_metric else []))
    for name, s in (per_metric or {}).items():  # bootstrapped metrics the spec's table lacks (accuracy_score)
        if name not in r["metrics"] and isinstance(s, dict):
            diff = _num(s.get("diff"))
            rows.append([name, s.get("a"), s.get("b"), f"{diff:+.4f}" if _number(diff) else "-", _better(diff),
                         *_interval(s)])
    winner = r.get("winner")
    parts = [f"A = {r['model_a']}", f"B = {r['model_b']}"]
    if r.get("dataset"):
        parts.append(f"dataset {r['dataset']}")
    parts += ["", table(headers, rows), "",
              f"winner: {winner if winner else 'undecided (a score is missing)'}"
              + (f" by {r['score_diff']:.4f} score" if r.get("score_diff") and winner != "tie" else "")]
    parts += _render_errors(r.get("errors"))
    if stats is None:
        parts.append("(no bootstrap statistics: compare with --resamples N > 0 for intervals and flips)")
    else:
        parts += _render_statistics(stats, level)
    return "\n".join(parts)


def _render_errors(errors: Any) -> list[str]:
    """Both error breakdowns side by side, and what changed (``localization errors 412 -> 170``)."""
    if not isinstance(errors, dict):
        return []
    if not errors.get("available"):
        return ["", f"error breakdown: {errors.get('detail', 'unavailable')}"]
    rows = [[k, r["a"], r["b"], f"{r['diff']:+d}" if isinstance(r["diff"], int) else "-"]
            for k, r in errors["rows"].items()]
    return ["", "errors at each model's operating point (DESIGN.md error types):",
            table(["COUNT", "A", "B", "DIFF (A-B)"], rows),
            "changed: " + ("; ".join(errors["changes"]) or "nothing")]


def _render_statistics(stats: dict[str, Any], level: str) -> list[str]:
    """The paired-bootstrap part of a comparison beyond the per-metric intervals."""
    parts = ["", f"paired bootstrap: {stats.get('n_resamples', '?')} resamples of {stats.get('n_images', '?')} "
                 f"images (seed {stats.get('seed', '?')}), {level} percentile intervals"]
    per_class = stats.get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = []
        for name, s in per_class.items():
            diff = _num(s.get("diff"))
            rows.append([name, s.get("support"), s.get("a"), s.get("b"), f"{diff:+.4f}" if _number(diff) else "-",
                         *_interval(s)])
        parts += ["", "per-class AP50:",
                  table(["CLASS", "SUPPORT", "A", "B", "DIFF (A-B)", f"{level} CI (A-B)", "P", "SIGNIFICANT"], rows)]
    flips = stats.get("flips")
    if isinstance(flips, dict) and "error" in flips:
        parts += ["", f"flip table unavailable: {flips['error']}"]
    elif isinstance(flips, dict) and flips:
        rows = [[name, f.get("total"), f.get("found_a"), f.get("found_b"), f.get("a_only"), f.get("b_only"),
                 ", ".join(f.get("examples_a_only") or []) or "-", ", ".join(f.get("examples_b_only") or []) or "-"]
                for name, f in flips.items() if isinstance(f, dict)]
        parts += ["", "objects found by one model only (flips):",
                  table(["CLASS", "OBJECTS", "FOUND_A", "FOUND_B", "A_ONLY", "B_ONLY", "E.G. A ONLY", "E.G. B ONLY"],
                        rows)]
    known = {"metrics", "per_class", "flips", "n_images", "n_resamples", "seed", "alpha", "weights"}
    for key, value in stats.items():
        if key not in known:
            parts += _render_any(key, value)
    return parts


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _render_any(title: str, value: Any, depth: int = 0) -> list[str]:
    """Readable lines for a statistics part of unknown shape: tables for lists or maps of rows."""
    label = title.replace("_", " ")
    if _scalar(value):
        return [f"{label}: {fmt(value)}"]
    if isinstance(value, list) and all(_scalar(v) for v in value):
        shown = ", ".join(fmt(v) for v in value[:10])
        return [f"{label}: {shown}" + (f", ... ({len(value) - 10} more)" if len(value) > 10 else "")]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for row in value for k, v in row.items() if _scalar(v)))
        return [f"{label}:", table([k.upper() for k in keys], [[row.get(k) for k in keys] for row in value])]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()) and all(
            all(_scalar(x) for x in v.values()) for v in value.values()):
        keys = list(dict.fromkeys(k for row in value.values() for k in row))
        return [f"{label}:", table(["", *(k.upper() for k in keys)],
                                   [[name, *(row.get(k) for k in keys)] for name, row in value.items()])]
    if isinstance(value, dict) and depth < 3:
        lines = [f"{label}:"] if value else [f"{label}: (empty)"]
        for k, v in value.items():
            lines += ["  " + line for line in _render_any(k, v, depth + 1)]
        return lines
    return [f"{label}: {json.dumps(value)}"]

