"""The composite score and the rules for custom weights (DESIGN.md, "Metric definitions").

``resolve_weights`` turns a client's weights object into the applied weights
(validated, summing to 1); ``composite_score`` applies them to a result,
dropping terms whose metric is null and renormalising the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vocab.errors import WeightsError

DEFAULT_WEIGHTS: dict[str, float] = {
    "mAP50_95": 0.35,
    "mAP50": 0.20,
    "small_object_recall": 0.20,
    "f1": 0.15,
    "speed": 0.10,
}

WEIGHT_KEYS: tuple[str, ...] = (
    "mAP50_95",
    "mAP50",
    "precision",
    "recall",
    "f1",
    "small_object_recall",
    "medium_object_recall",
    "large_object_recall",
    "speed",
)

_SUM_TOLERANCE = 1e-9


def speed_score(inference_ms: float | None) -> float | None:
    """1.0 at <= 50 ms per image, 0.0 at >= 500 ms, linear between; None when unknown."""
    if inference_ms is None:
        return None
    return min(1.0, max(0.0, (500.0 - float(inference_ms)) / 450.0))


def validate_weights(weights: Any) -> dict[str, float]:
    """Check a client's weights object; return it as ``{key: float}``.

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
    given: dict[str, float] = {}
    for key, value in weights.items():
        if key not in WEIGHT_KEYS:
            raise WeightsError(
                f"unknown weights key {key!r}; allowed keys: {', '.join(WEIGHT_KEYS)}"
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


def resolve_weights(weights: Any = None) -> dict[str, float]:
    """The applied weights for a client's weights object (validated first).

    Given weights are kept as given; the default weights of the keys not
    given are scaled to fill ``1 - sum(given)``. When no default weight is left
    to fill with, the given weights are normalised to sum to 1.
    """
    given = validate_weights(weights)
    if not given:
        return dict(DEFAULT_WEIGHTS)
    remaining = {k: w for k, w in DEFAULT_WEIGHTS.items() if k not in given}
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


def metric_values(result: Mapping[str, Any]) -> dict[str, float | None]:
    """The value of every weighable metric of a result (``speed`` = speed_score)."""
    values: dict[str, float | None] = {}
    for key in WEIGHT_KEYS:
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
    values = metric_values(result)
    used = {k: w for k, w in applied_weights.items() if w > 0 and values.get(k) is not None}
    total = sum(used.values())
    if total <= 0:
        return None
    weighted = 0.0
    for k, w in used.items():
        weighted += w * float(values[k])  # type: ignore[arg-type]  # not None: filtered above
    return weighted / total
