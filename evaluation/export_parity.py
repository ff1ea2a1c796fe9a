"""The export-parity verdict: does an ONNX export score what its ``.pt`` scores, on the same images?

Pure Python on the paired statistics of the export (a) against its ``.pt`` (b)
(``evaluation.stats.bootstrap.paired_bootstrap`` over both evaluations' evidence, so the
point values are the two models on exactly the same images). An export fails
when |Δ| of the task's primary metric (``vocab.tasks.Task.primary``: mAP50-95
for detection and obb, mask or pose mAP50-95, top-1 accuracy) exceeds
``max_delta``, or when a class with at least ``min_class_support`` ground-truth
objects loses more than ``max_class_delta`` of its per-class value (AP50 of the
primary family; a classifier's recall). These are tolerances, not significance tests: an export of the same
weights reproduces its ``.pt`` to about four decimals, so any real difference
(a wrong opset, FP16 overflow, an export of another checkpoint) is far
outside them, and the bootstrap intervals are reported for context only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vocab.tasks import DEFAULT_TASK, TASKS


def parity_verdict(stats: Mapping[str, Any], *, max_delta: float, max_class_delta: float,
                   min_class_support: int, task: str = DEFAULT_TASK) -> dict[str, Any]:
    """``{"verdict": "pass" | "fail", "pt_mAP50_95", "onnx_mAP50_95", "delta_mAP50_95", "ci_low",
    "ci_high", "classes": {name: {"support", "pt_ap50", "onnx_ap50", "delta"}}, "failures": [str],
    "max_export_delta", "max_export_class_delta", "min_class_support"}``; deltas are export minus .pt."""
    metric = TASKS[task].primary
    per_class = stats.get("per_class_metric") or "AP50"  # what the statistics' per-class values are
    m = stats["metrics"][metric]
    delta = m.get("diff")
    failures: list[str] = []
    if delta is None:
        failures.append(f"{metric} is undefined for one of the two (no ground truth?): parity cannot be shown")
    elif abs(delta) > max_delta:
        failures.append(f"the export's {metric} {m['a']:.4f} differs from the .pt's {m['b']:.4f} by "
                        f"{delta:+.4f}, more than max_export_delta {max_delta:g}")
    classes: dict[str, dict[str, Any]] = {}
    for name, s in stats.get("per_class", {}).items():
        d = s.get("diff")
        classes[str(name)] = {"support": s.get("support", 0), "pt_ap50": s.get("b"), "onnx_ap50": s.get("a"),
                              "delta": d}
        if s.get("support", 0) < min_class_support:
            continue
        if s.get("a") is None and s.get("b") is not None:
            failures.append(f"class {name} (support {s['support']}) has no AP50 from the export")
        elif d is not None and d < -max_class_delta:
            failures.append(f"class {name} (support {s['support']}): {per_class} {s['b']:.4f} in the .pt -> {s['a']:.4f} "
                            f"in the export ({d:+.4f}), beyond max_export_class_delta {max_class_delta:g}")
    return {
        "verdict": "fail" if failures else "pass",
        "metric": metric, f"pt_{metric}": m.get("b"), f"onnx_{metric}": m.get("a"), f"delta_{metric}": delta,
        "ci_low": m.get("ci_low"), "ci_high": m.get("ci_high"),
        "classes": classes, "failures": failures,
        "max_export_delta": max_delta, "max_export_class_delta": max_class_delta,
        "min_class_support": min_class_support,
    }
