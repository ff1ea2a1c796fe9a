"""The promotion gates: their verdict on a comparison.

The gates are the keys of ``vocab.terms.GATE_DEFAULTS``. The daemon's
``[promotion]`` config takes its defaults from there (``gate_config_default``:
a gate that is off, ``None``, is spelled ``-1`` in TOML, which has no null)
and turns a config back into gate settings with ``from_config``; a request's
overrides are checked by the contract (``vocab.contract.requests.Gates``).
``evaluate_gates`` needs only a comparison's numbers (``bootstrap.paired_bootstrap``'s result), not the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluation.stats.reference import SIZE_KEYS
from vocab.terms import GATE_DEFAULTS, GATE_KEYS

_NULLABLE = ("max_class_regression", "max_size_recall_regression")


def from_config(config: Any) -> dict[str, Any]:
    """Gate settings from an object with the gates as attributes (vocab.config.PromotionConfig)."""
    settings = {key: getattr(config, key) for key in GATE_KEYS}
    for key in _NULLABLE:
        if settings[key] is not None and settings[key] < 0:
            settings[key] = None
    return settings


def gates_active(gates: Mapping[str, Any]) -> bool:
    """Whether any gate is on (then the paired bootstrap decides too, not only the point rule)."""
    return bool(gates["require_significant"]) or any(gates[key] is not None for key in _NULLABLE)


def _failure(gate: str, subject: str, s: Mapping[str, Any], threshold: float | None, reason: str) -> dict[str, Any]:
    """A failed gate: every number its ``reason`` prints is one of these fields (``a`` the candidate's value,
    ``b`` the baseline's, ``value`` = a - b with its interval, ``support`` for a class)."""
    return {"gate": gate, "subject": subject, "value": s.get("diff"), "ci_low": s.get("ci_low"),
            "ci_high": s.get("ci_high"), "a": s.get("a"), "b": s.get("b"), "support": s.get("support"),
            "threshold": threshold, "reason": reason}


def _regressed(s: Mapping[str, Any], threshold: float) -> bool:
    """A significant loss larger than the threshold: diff < -threshold and the interval lies below 0."""
    d, hi = s.get("diff"), s.get("ci_high")
    return d is not None and hi is not None and d < -threshold and hi < 0


def gain_basis(comparison: Mapping[str, Any]) -> str:
    """The metric whose interval judges the score gain: ``score`` (accuracy and speed, resampled together)
    when the comparison has it, else ``accuracy_score`` (evidence without timings)."""
    s = comparison.get("metrics", {}).get("score")
    return "score" if s and s.get("ci_low") is not None else "accuracy_score"


def evaluate_gates(comparison: Mapping[str, Any], gates: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The gates a comparison (``paired_bootstrap``: a is the candidate, b the baseline) fails; [] = passes.

    gates (missing keys take GATE_DEFAULTS):

    - ``require_significant`` (bool) with ``min_delta`` (float): the score
      gain must be established: the lower bound of its interval (``score``,
      accuracy and speed together, or ``accuracy_score`` when the evidence
      holds no timings: ``gain_basis``) must be above min_delta. Without
      require_significant, min_delta is unused here.
    - ``max_class_regression`` (float or None) with ``min_class_support``
      (int): no class with at least that many ground-truth objects may lose
      its per-class metric (the comparison's ``per_class_metric``: AP50 of
      the task's primary family, e.g. mask AP50 for segmentation; recall for
      classification) significantly by more than the threshold. A class fails when its
      point estimate diff < -threshold AND its interval lies entirely below 0
      (ci_high < 0). This is the conservative reading for a promotion gate:
      it refuses on any established loss whose size exceeds the threshold,
      where "the whole interval below -threshold" would wave through losses
      that are certain but not yet certainly beyond the threshold. Classes
      below the support are reported in the comparison but never gated.
    - ``max_size_recall_regression`` (float or None): the same rule for
      small/medium/large object recall (a bucket without ground truth is not
      gated).

    Each failure: ``{"gate", "subject", "value" (the diff), "ci_low",
    "ci_high", "threshold", "reason"}``.
    """
    unknown = set(gates or {}) - set(GATE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown gates: {', '.join(sorted(unknown))}; allowed: {', '.join(GATE_KEYS)}")
    g = {**GATE_DEFAULTS, **(gates or {})}
    failures: list[dict[str, Any]] = []
    metrics = comparison.get("metrics", {})

    if g["require_significant"]:
        subject = gain_basis(comparison)
        s = metrics.get(subject) or {}
        min_delta = float(g["min_delta"] or 0.0)
        lo = s.get("ci_low")
        if lo is None:
            failures.append(_failure(
                "require_significant", subject, s, min_delta,
                "no score to compare (a model has no scorable metric): the gain cannot be established"))
        elif not lo > min_delta:
            failures.append(_failure(
                "require_significant", subject, s, min_delta,
                f"{subject.replace('_', ' ')} gain {s['diff']:+.4f} is not established above {min_delta:+.4f}: its "
                f"interval [{lo:+.4f}, {s['ci_high']:+.4f}] reaches {min_delta:+.4f}"))

    thr = g["max_class_regression"]
    if thr is not None:
        thr = float(thr)
        # what per_class holds: "ap50" (detection, obb), "mask_ap50", "pose_ap50", "recall" (classification)
        ap50 = str(comparison.get("per_class_metric", "ap50")).replace("_", " ").replace("ap50", "AP50")
        min_support = int(g["min_class_support"] or 0)
        for name, s in comparison.get("per_class", {}).items():
            if s.get("support", 0) < min_support:
                continue
            if _regressed(s, thr):
                failures.append(_failure(
                    "max_class_regression", str(name), s, thr,
                    f"class {name} (support {s['support']}): {ap50} {s['b']:.4f} -> {s['a']:.4f} ({s['diff']:+.4f}), "
                    f"a loss beyond the allowed {thr:.4f}, and significant: interval "
                    f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] lies below 0"))

    thr = g["max_size_recall_regression"]
    if thr is not None:
        thr = float(thr)
        for key in SIZE_KEYS:
            s = metrics.get(key) or {}
            if _regressed(s, thr):
                failures.append(_failure(
                    "max_size_recall_regression", key, s, thr,
                    f"{key.replace('_', ' ')} {s['b']:.4f} -> {s['a']:.4f} ({s['diff']:+.4f}), a drop beyond the "
                    f"allowed {thr:.4f}, and significant: interval [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] "
                    "lies below 0"))
    return failures
