"""The composite score and the rules for custom weights (docs/metrics.md, "Composite score").

``resolve_weights`` turns a client's weights object into the applied weights
of a task (validated against that task's weight keys, summing to 1);
``composite_score`` applies them to a result, dropping terms whose metric is
null and renormalising the rest. Each task's weight keys and default weights
are declared in ``vocab.tasks``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from vocab.errors import WeightsError
from vocab.tasks import DEFAULT_TASK, TASKS, task

# Detection's, the spec's defaults (every task's are in vocab.tasks).
DEFAULT_WEIGHTS: dict[str, float] = TASKS[DEFAULT_TASK].default_weights
WEIGHT_KEYS: tuple[str, ...] = TASKS[DEFAULT_TASK].weight_keys

_SUM_TOLERANCE = 1e-9


def speed_score(inference_ms: float | None) -> float | None:
    """1.0 at <= 50 ms per image, 0.0 at >= 500 ms, linear between; None when unknown."""
    if inference_ms is None:
        return None
    return min(1.0, max(0.0, (500.0 - float(inference_ms)) / 450.0))


def validate_weights(weights: Any, task_name: str = DEFAULT_TASK) -> dict[str, float]:
    """Check a client's weights object against the task's weight keys; return it as ``{key: float}``.

    ``None`` and ``{}`` mean "defaults" and return ``{}``. Raises
    ``WeightsError`` naming the offending key for an unknown key, a value that
    is not a finite number (booleans are not numbers), a negative value or one
    over 1, or a sum over 1. ``resolve_weights`` also refuses weights that leave
    nothing to score (all zero with no default weight left to fill).
    """
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise WeightsError(
            f"weights must be an object mapping metric names to numbers, got {type(weights).__name__}"
        )
    keys = task(task_name).weight_keys
    given: dict[str, float] = {}
    for key, value in weights.items():
        if key not in keys:
            raise WeightsError(
                f"unknown weights key {key!r} for {task(task_name).name}; allowed keys: {', '.join(keys)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WeightsError(f"weights[{key!r}] must be a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise WeightsError(f"weights[{key!r}] must be a finite number, got {value!r}")
        if value < 0:
            raise WeightsError(f"weights[{key!r}] must be >= 0, got {value!r}")
        if value > 1:  # before any float conversion: an integer of any size is refused, never overflows
            raise WeightsError(f"weights[{key!r}] is over 1: each weight, and their sum, must be at most 1")
        given[key] = float(value)
    total = sum(given.values())
    if total > 1.0 + _SUM_TOLERANCE:
        raise WeightsError(f"weights sum to {total:g}, which is over 1")
    return given


def resolve_weights(weights: Any = None, task_name: str = DEFAULT_TASK) -> dict[str, float]:
    """The applied weights of a task for a client's weights object (validated first).

    Given weights are kept as given; the default weights of the keys not
    given are scaled to fill ``1 - sum(given)``. When no default weight is left
    to fill with, the given weights are normalised to sum to 1.
    """
    given = validate_weights(weights, task_name)
    defaults = task(task_name).default_weights
    if not given:
        return dict(defaults)
    remaining = {k: w for k, w in defaults.items() if k not in given}
    remaining_total = sum(remaining.values())
    given_total = sum(given.values())
    if remaining_total > 0:
        fill = max(0.0, 1.0 - given_total)
        applied = dict(given)
        for key, w in remaining.items():
            applied[key] = w / remaining_total * fill
        return applied
    if given_total <= 0:
        raise WeightsError("weights sum to 0 and no default weight is left to fill them")
    return {k: w / given_total for k, w in given.items()}


def metric_values(result: Mapping[str, Any], keys: Iterable[str] = WEIGHT_KEYS) -> dict[str, float | None]:
    """The value of each of ``keys`` in a result (``speed`` = speed_score of its ``inference_ms``)."""
    values: dict[str, float | None] = {}
    for key in keys:
        if key == "speed":
            values[key] = speed_score(result.get("inference_ms"))
        else:
            v = result.get(key)
            values[key] = None if v is None else float(v)
    return values


def composite_score(result: Mapping[str, Any], applied_weights: Mapping[str, float]) -> float | None:
    """sum(w_k * m_k) over terms with a metric, renormalised by their total weight.

    A term whose metric is null is dropped; None when every weighted term is
    null (nothing to score on).
    """
    values = metric_values(result, applied_weights)
    used = {k: w for k, w in applied_weights.items() if w > 0 and values.get(k) is not None}
    total = sum(used.values())
    if total <= 0:
        return None
    weighted = 0.0
    for k, w in used.items():
        weighted += w * float(values[k])  # type: ignore[arg-type]  # not None: filtered above
    return weighted / total
