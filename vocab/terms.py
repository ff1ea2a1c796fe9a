"""Names and bounds shared by the handlers, the OpenAPI document, the store, the config and the CLI.

Each is defined here once; a layer that needs one imports it from here.
"""

from __future__ import annotations

from typing import Any

from vocab.tasks import DEFAULT_TASK, TASK_NAMES, TASKS

ACTIVE_STATUSES: tuple[str, ...] = ("queued", "running")
FINISHED_STATUSES: tuple[str, ...] = ("completed", "failed", "cancelled")
JOB_STATUSES: tuple[str, ...] = ACTIVE_STATUSES + FINISHED_STATUSES
JOB_KINDS: tuple[str, ...] = ("eval", "compare", "train")

SPLITS: tuple[str, ...] = ("val", "test", "train")  # val is the default everywhere

# The metrics a detection comparison reports side by side (``diff`` is a - b, the spec's sign); each
# task's are ``vocab.tasks.Task.compared_metrics``.
COMPARED_METRICS: tuple[str, ...] = TASKS[DEFAULT_TASK].compared_metrics

# Request bounds (the spec's ranges; imgsz per task in vocab.tasks, detection's here).
IMGSZ_MIN, IMGSZ_MAX = TASKS[DEFAULT_TASK].imgsz_min, TASKS[DEFAULT_TASK].imgsz_max
BATCH_MIN, BATCH_MAX = 1, 256
# What a train request that leaves them out gets, and a detection evaluation that nothing sizes (the spec's
# 640; every task's evaluation default is ``vocab.tasks.task_default_imgsz``; ``[eval]`` may change them).
DEFAULT_IMGSZ = TASKS[DEFAULT_TASK].eval_imgsz
DEFAULT_BATCH = 16

# The tasks each kind of request serves (their imgsz bounds apply).
EVAL_TASKS: tuple[str, ...] = TASK_NAMES
TRAIN_TASKS: tuple[str, ...] = TASK_NAMES

# The promotion gates and their one set of defaults (evaluation.stats.gates validates and applies them).
GATE_DEFAULTS: dict[str, Any] = {
    "require_significant": True,  # the score gain's interval must clear min_delta (false: the spec's rule)
    "min_delta": 0.0,
    "max_class_regression": None,  # None: off
    "min_class_support": 10,
    "max_size_recall_regression": None,  # None: off
}
GATE_KEYS: tuple[str, ...] = tuple(GATE_DEFAULTS)
# [promotion] export_parity: check an export beside the candidate when there is one, require one, or never.
EXPORT_PARITY_MODES: tuple[str, ...] = ("auto", "required", "off")
GATE_OFF = -1.0  # a config file's "gate off" for the gates whose default is None (TOML has no null; any value < 0)


def gate_config_default(key: str) -> Any:
    """The ``[promotion]`` config default of a gate (``GATE_OFF`` for a gate off by default)."""
    value = GATE_DEFAULTS[key]
    return GATE_OFF if value is None else value
