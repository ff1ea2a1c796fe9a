"""One quantity per figure: every number a decision's reason prints is one of the decision's stored fields,
for every kind of automatic decision (judged in process from paired-bootstrap numbers shaped as
``evaluation.stats.bootstrap`` gives them), and a gain is the difference of exactly what its interval is of."""

from __future__ import annotations

import re
from typing import Any

import pytest

from daemon.promote.decision import Decision, Gain, identical_reason, judge
from evaluation.stats.gates import evaluate_gates
from vocab.terms import GATE_DEFAULTS

NUMBER = re.compile(r"(?<![\w.])[+-]?\d+(?:\.\d+)?(?![\w.])")


def _stored_numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _stored_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _stored_numbers(v)]
    return []


def assert_figures_are_stored(decision: Decision) -> None:
    """Each number in the reason equals a stored field at the precision printed."""
    public = decision.public()
    stored = _stored_numbers({k: v for k, v in public.items() if k != "reason"})
    for token in NUMBER.findall(decision.reason):
        decimals = len(token.split(".")[1]) if "." in token else 0
        assert any(f"{n:.{decimals}f}" == f"{float(token):.{decimals}f}" for n in stored), (token, decision.reason)


def _interval(a: float, b: float, low: float, high: float) -> dict[str, Any]:
    return {"a": a, "b": b, "diff": a - b, "ci_low": low, "ci_high": high, "significant": low > 0 or high < 0}


def _stats(timed: bool, acc_diff: float = 0.05, per_class: dict[str, Any] | None = None,
           sizes: dict[str, Any] | None = None) -> dict[str, Any]:
    metrics = {"accuracy_score": _interval(0.60 + acc_diff, 0.60, acc_diff - 0.03, acc_diff + 0.03), **(sizes or {})}
    if timed:
        metrics["score"] = _interval(0.66 + acc_diff, 0.66, acc_diff - 0.02, acc_diff + 0.02)
        metrics["inference_ms"] = _interval(40.0, 42.0, -4.0, 0.5)
    return {"metrics": metrics, "per_class": per_class or {}, "alpha": 0.05, "n_resamples": 300, "seed": 0}


def _decide(stats: dict[str, Any] | None, new: float, old: float, gates: dict[str, Any],
            identical: bool = False) -> Decision:
    d = Decision(decision="refused", reason="", new_sha256="a" * 64, previous_sha256="b" * 64, new_score=new,
                 previous_score=old, eval_id=7, baseline_eval_id=3, gate_settings=gates)
    gain = Gain.of(new, old, stats, (141.25, 147.5))
    d.gain = gain.public()
    desc = f"the incumbent current.pt (eval {d.baseline_eval_id})"
    if identical:
        d.refuse(identical_reason(gain, desc))
        return d
    d.gates = evaluate_gates(stats, gates) if stats else []
    d.decision, d.reason = judge(gain, new, old, desc, gates, d.gates)
    return d


GATES = dict(GATE_DEFAULTS)
REGRESSION = {**GATES, "max_class_regression": 0.01, "min_class_support": 5, "max_size_recall_regression": 0.02}
LOST_CLASS = {"red": {**_interval(0.41, 0.72, -0.45, -0.2), "support": 12}}
LOST_SIZE = {"small_object_recall": _interval(0.30, 0.52, -0.35, -0.1)}


@pytest.mark.parametrize(("name", "decision", "stats", "new", "old", "gates", "identical"), [
    ("promoted, score interval", "promoted", _stats(True), 0.71, 0.66, GATES, False),
    ("promoted, accuracy-part interval", "promoted", _stats(False), 0.6731, 0.6123, GATES, False),
    ("refused, does not beat", "refused", _stats(True, -0.03), 0.63, 0.66, GATES, False),
    ("refused, not beyond noise", "refused", _stats(False, 0.01), 0.6131, 0.6123, GATES, False),
    ("refused, class and size regression", "refused", _stats(True, 0.05, LOST_CLASS, LOST_SIZE), 0.71, 0.66,
     REGRESSION, False),
    ("promoted, the spec's point rule", "promoted", None, 0.70, 0.66, {**GATES, "require_significant": False}, False),
    ("refused, identical predictions", "refused", _stats(False, 0.0), 0.66, 0.66, GATES, True),
])
def test_every_figure_in_a_reason_is_a_stored_field(name: str, decision: str, stats: dict[str, Any] | None,
                                                    new: float, old: float, gates: dict[str, Any],
                                                    identical: bool) -> None:
    d = _decide(stats, new, old, gates, identical)
    assert d.decision == decision, d.reason
    assert_figures_are_stored(d)
    gain = d.gain
    assert gain is not None
    if stats is not None:  # the gain is the difference of exactly the quantity its interval is of
        shown = stats["metrics"][gain["basis"]]
        assert (gain["value"], gain["ci_low"], gain["ci_high"]) == (shown["diff"], shown["ci_low"], shown["ci_high"])


def test_without_a_speed_interval_the_accuracy_part_is_shown_and_the_speed_part_labelled() -> None:
    d = _decide(_stats(False), 0.6731, 0.6123, GATES)
    gain = d.gain
    assert gain is not None and gain["basis"] == "accuracy_score"
    assert gain["value"] == pytest.approx(0.05) and gain["value"] != pytest.approx(0.6731 - 0.6123)
    assert d.reason.startswith("accuracy-part gain +0.0500 [+0.0200, +0.0800] (the score without its speed term")
    assert "speed part: inference 147.5 -> 141.2 ms" in d.reason and "no interval" in d.reason
    assert gain["speed"]["speed_score_diff"] == pytest.approx((147.5 - 141.25) / 450)
