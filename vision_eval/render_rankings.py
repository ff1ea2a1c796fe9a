"""The leaderboard and a model's history as tables, each task with its own metrics (``vocab.tasks``).

Leaderboard rows may carry ``group``: the settings they were ranked under
(dataset content, task, split, format, image size), an object or a string;
the rank restarts in each group. One table is printed per group, its
settings in a heading above it, in the order the groups first appear. Rows
without ``group`` form one group without a heading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from vision_eval.formats import header, metric, metrics_of, ms, shown_path, task_of, version
from vision_eval.text_table import paragraph, table

# A group's settings in the order a heading names them; other keys follow in the daemon's order.
GROUP_KEYS = ("dataset", "dataset_fingerprint", "task", "split", "format", "imgsz")


def _dataset(r: Mapping[str, Any]) -> str:
    return shown_path(r.get("dataset")) + (" (earlier content)" if r.get("current_content") is False else "")


def _metric_columns(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The headers and keys of the rows' tasks' metrics (small-object recall where a task has it)."""
    names, sizes = metrics_of(rows)
    keys = [*names, *(["small_object_recall"] if sizes else [])]
    return [header(k) if k != "small_object_recall" else "SMALL_R" for k in keys], keys


def group_heading(group: Any) -> str:
    """A group's settings in one line: ``dataset data/coco.yaml (content 3f2a…), task detection, ...``."""
    if not isinstance(group, Mapping):
        return str(group)
    parts = []
    for key in (*GROUP_KEYS, *(k for k in group if k not in GROUP_KEYS)):
        value = group.get(key)
        if value is None:
            continue
        if key == "dataset":
            parts.append(f"dataset {shown_path(value)}")
        elif key == "dataset_fingerprint":
            parts.append(f"content {str(value)[:12]}")
        else:
            parts.append(f"{key} {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    return ", ".join(parts)


def _groups(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, list[Mapping[str, Any]]]]:
    found: dict[str, tuple[Any, list[Mapping[str, Any]]]] = {}
    for r in rows:
        key = json.dumps(r.get("group"), sort_keys=True, default=str)
        found.setdefault(key, (r.get("group"), []))[1].append(r)
    return list(found.values())


def _board(rows: Sequence[Mapping[str, Any]], group: Any, width: int | None) -> str:
    names, keys = _metric_columns(rows)
    with_dataset = not (isinstance(group, Mapping) and group.get("dataset"))  # else the heading names it
    headers = ["RANK", "MODEL", "VERSION", "SCORE", *names, "INF_MS", "EVALUATED", *(["DATASET"] if with_dataset else [])]
    body = [[r.get("rank"), r.get("model_name"), version(r.get("version")), metric(r.get("score")),
             *(metric(r.get(k)) for k in keys), ms(r.get("inference_ms")), r.get("timestamp"),
             *([_dataset(r)] if with_dataset else [])] for r in rows]
    return table(headers, body, width=width, wrap_at=None, paths=[len(headers) - 1] if with_dataset else [])


def render_leaderboard(rows: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    """One ranked table per settings group (see the module's contract); "no evaluations yet" when empty."""
    if not rows:
        return "no evaluations yet"
    parts = []
    for group, members in _groups(rows):
        title = [paragraph(group_heading(group), width)] if group is not None else []
        parts.append("\n".join([*title, _board(members, group, width)]))
    return "\n\n".join(parts)


def render_history(rows: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    """Every evaluation of a model, newest first, with the settings it ran under."""
    names, keys = _metric_columns(rows)
    tasks = any(r.get("task") for r in rows)
    headers = ["EVAL", "EVALUATED", "VERSION", *(["TASK"] if tasks else []), "SCORE", *names, "INF_MS", "IMGSZ",
               "SPLIT", "FORMAT", "TRIGGER", "JOB", "DATASET"]
    body = [[r.get("eval_id"), r.get("timestamp"), version(r.get("version")),
             *([task_of(r).name] if tasks else []), metric(r.get("score")), *(metric(r.get(k)) for k in keys),
             ms(r.get("inference_ms")), r.get("imgsz"), r.get("split"), r.get("format"), r.get("trigger"),
             r.get("job_id"), _dataset(r)] for r in rows]
    return table(headers, body, width=width, wrap_at=None, paths=[len(headers) - 1])
