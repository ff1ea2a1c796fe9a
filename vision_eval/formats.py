"""How ``vision-eval`` writes each kind of value: metrics, times, sizes, counts, paths and a result's task.

Metrics and scores have 4 decimals, milliseconds 1 (``20.5 ms``), sizes 1
(``5.9 MB``), seconds a unit (``12.5 s``); counts name their unit in the
singular or the plural (``1 batch``, ``2 batches``). Paths are shown relative
to the models root or to a dataset's folder when they lie under one, else
under ``~`` when under the home folder, else as given. A result or row
without ``task`` is of ``vocab.tasks.DEFAULT_TASK``; the metrics a task has
come from ``vocab.tasks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from vision_eval.text_table import fmt
from vocab.paths import DEFAULT_MODELS_ROOT
from vocab.tasks import ALIASES, DEFAULT_TASK, TASKS, Task

_IRREGULAR = {"batch": "batches", "class": "classes"}


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def metric(v: Any) -> str:
    """A metric or a score: 4 decimals; '-' when missing."""
    return f"{v:.4f}" if _real(v) else fmt(v)


def signed(v: Any, digits: int = 4) -> str:
    """A difference with its sign: ``+0.3000``; '-' when missing."""
    return f"{v:+.{digits}f}" if _real(v) else "-"


def ms(v: Any) -> str:
    """Milliseconds: ``20.5 ms``."""
    return f"{v:.1f} ms" if _real(v) else "-"


def mb(v: Any) -> str:
    """A size in MiB: ``5.9 MB``."""
    return f"{v:.1f} MB" if _real(v) else "-"


def seconds(v: Any) -> str:
    """A duration: ``12.5 s``."""
    return f"{v:.1f} s" if _real(v) else "-"


def count(n: Any, noun: str) -> str:
    """``1 batch``, ``2 batches``, ``1 epoch``; ``? epochs`` when ``n`` is missing."""
    if not _real(n):
        return f"? {plural(noun)}"
    return f"{n} {noun if n == 1 else plural(noun)}"


def plural(noun: str) -> str:
    return _IRREGULAR.get(noun, noun + "s")


def p_value(v: Any) -> str:
    """A p-value: 3 decimals, ``<0.001`` below that."""
    if not _real(v):
        return "-"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def version(v: Any) -> str:
    return f"v{v}" if v is not None else "-"


def sha(v: Any) -> str:
    """A sha256 by its first 12 hex digits."""
    return v[:12] if isinstance(v, str) else "-"


# --------------------------------------------------------------------------- paths


def models_root() -> Path:
    """The default models root of this machine (the daemon's, unless its config names another)."""
    return DEFAULT_MODELS_ROOT.expanduser()


def dataset_folder(dataset: Any) -> Path | None:
    """The folder of a dataset path (a YAML's folder, or a classification dataset's own folder)."""
    if not isinstance(dataset, str) or not dataset:
        return None
    p = PurePosixPath(dataset)
    return Path(p.parent if p.suffix else p)


def shown_path(path: Any, *bases: Path | None) -> str:
    """``path`` relative to the first of ``bases`` that holds it, else ``~/…`` under the home folder,
    else as given ('-' when missing)."""
    if not isinstance(path, str) or not path:
        return "-"
    p = PurePosixPath(path)
    for base in (*bases, Path.home()):
        if base is not None and p.is_relative_to(base) and p != PurePosixPath(base):
            rel = str(p.relative_to(base))
            return rel if base != Path.home() else f"~/{rel}"
    return path


# --------------------------------------------------------------------------- tasks


def task_of(row: Mapping[str, Any]) -> Task:
    """The task of a result, a ranking row or a group (``task``, an ultralytics alias too; else, or when
    the name is unknown, the default task)."""
    name = row.get("task")
    group = row.get("group")
    if name is None and isinstance(group, Mapping):
        name = group.get("task")
    name = str(name) if name is not None else DEFAULT_TASK
    return TASKS.get(ALIASES.get(name, name), TASKS[DEFAULT_TASK])


def metrics_of(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], bool]:
    """The accuracy metrics the rows' tasks have, in ``vocab.tasks`` order without repeats, and whether
    any of those tasks has small/medium/large object recall."""
    tasks = list(dict.fromkeys(task_of(r).name for r in rows)) or [DEFAULT_TASK]
    names = list(dict.fromkeys(m for t in tasks for m in TASKS[t].metrics))
    return names, any(TASKS[t].size_recall for t in tasks)


def header(metric_name: str) -> str:
    """A metric's column header: precision, recall and f1 as P, R and F1 (``mask_precision`` -> ``mask_P``)."""
    for word, short in (("precision", "P"), ("recall", "R"), ("f1", "F1")):
        if metric_name == word or metric_name.endswith("_" + word):
            return metric_name[: -len(word)] + short
    return metric_name
