"""The readable summaries ``vision-eval`` prints of a job's result: an evaluation and a training
(``--json`` prints the daemon's JSON instead; comparisons are in ``render_compare``).

Every renderer takes the result and the terminal ``width`` (None: no limit)
and never loses text: long values wrap (``text_table``). Each task shows its
own metrics, read from ``vocab.tasks`` (``formats.task_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vision_eval.formats import (
    count,
    dataset_folder,
    header,
    mb,
    metric,
    models_root,
    ms,
    sha,
    shown_path,
    task_of,
)
from vision_eval.render_compare import render_compare
from vision_eval.text_table import field, fmt, paragraph, table

__all__ = ["render_compare", "render_eval", "render_train"]

SIZES = ("small", "medium", "large")


def _cell(v: Any) -> str:
    """A per-class or matrix cell: counts as they are, fractions with 4 decimals."""
    return metric(v) if isinstance(v, float) else fmt(v)


def _head(r: Mapping[str, Any], width: int | None) -> list[str]:
    version = f" v{r['version']}" if r.get("version") else ""
    data_dir = dataset_folder(r.get("dataset"))
    images = count(r["images"], "image") if r.get("images") is not None else "? images"
    settings = ", ".join(f"{k} {r[k]}" for k in ("imgsz", "batch", "format", "device", "ultralytics_version")
                         if r.get(k) is not None).replace("ultralytics_version", "ultralytics")
    return [
        field("model", f"{r.get('model_name')}{version}{'  (cached result)' if r.get('cached') else ''}", width),
        field("task", task_of(r).name, width),
        field("checkpoint", f"{shown_path(r.get('model_path'), models_root(), data_dir)} "
                            f"(sha256 {sha(r.get('checkpoint_sha256'))})", width),
        field("dataset", f"{shown_path(r.get('dataset'))} ({images}, split {r.get('split') or 'val'})", width),
        field("settings", settings or "-", width),
        field("eval id", r.get("eval_id"), width),
    ]


def _metric_rows(r: Mapping[str, Any]) -> list[list[str]]:
    t = task_of(r)
    rows = [["score", metric(r.get("score")), ""]]
    rows += [[m, metric(r.get(m)), ""] for m in t.metrics]
    if "conf_threshold" in r:
        rows.append(["conf_threshold", metric(r["conf_threshold"]), "the confidence of the P, R and F1 above"])
    if t.size_recall:
        for size in SIZES:
            found, total = r.get(f"{size}_object_found"), r.get(f"{size}_object_count")
            rows.append([f"{size}_object_recall", metric(r.get(f"{size}_object_recall")),
                         f"{found}/{count(total, 'object')} found" if total is not None else ""])
    spread = (f"IQR {ms(r.get('inference_ms_iqr'))} over {count(r['inference_batches'], 'batch')} "
              "(warm-up left out)" if r.get("inference_batches") else "")
    rows.append(["inference_ms", ms(r.get("inference_ms")), spread])
    rows += [[m, ms(r.get(m)), ""] for m in ("preprocess_ms", "postprocess_ms")]
    rows.append(["model_size_mb", mb(r.get("model_size_mb")), ""])
    return rows


def _per_class(r: Mapping[str, Any], width: int | None) -> list[str]:
    """The per-class table: whatever measures the task gives per class (``per_class_metrics``)."""
    per_class = r.get("per_class_metrics") or {k: {"ap50": v} for k, v in (r.get("per_class") or {}).items()}
    if not per_class:
        return []
    keys = list(dict.fromkeys(k for c in per_class.values() for k in c))
    return ["", "per class:", table(["CLASS", *(header(k).upper() for k in keys)],
                                    [[name, *(_cell(c.get(k)) for k in keys)] for name, c in per_class.items()],
                                    width=width, wrap_at=None)]


def _confusion(r: Mapping[str, Any], width: int | None) -> list[str]:
    """``confusion_matrix``: ``{labels, matrix}``, rows the predicted class, columns the true one."""
    cm = r.get("confusion_matrix")
    if not isinstance(cm, Mapping) or not cm.get("matrix"):
        return []
    labels = [str(x) for x in cm.get("labels") or range(len(cm["matrix"]))]
    return ["", paragraph("confusion matrix (rows: predicted class, columns: true class):", width),
            table(["PREDICTED \\ TRUE", *labels], [[label, *(_cell(v) for v in row)]
                                                   for label, row in zip(labels, cm["matrix"])],
                  width=width, wrap_at=None)]


def _after(r: Mapping[str, Any], width: int | None) -> list[str]:
    """Weights, warnings and the promotion decision, each wrapped."""
    parts = []
    if r.get("weights"):
        parts.append(paragraph("score weights: " + ", ".join(f"{k} {v:.3g}" for k, v in r["weights"].items()),
                               width))
    parts += [paragraph(f"warning: {w}", width) for w in r.get("warnings") or []]
    if r.get("promotion"):
        p = r["promotion"]
        parts.append(paragraph(f"promotion: {p['decision']}: {p['reason']}", width))
    return parts


def render_eval(r: Mapping[str, Any], width: int | None = None) -> str:
    """An evaluation: what was evaluated how, the task's metrics, speed and size, per class, and (for
    classification) the confusion matrix."""
    parts = [*_head(r, width), "",
             table(["METRIC", "VALUE", "NOTE"], _metric_rows(r), width=width),
             *_per_class(r, width), *_confusion(r, width)]
    after = _after(r, width)
    return "\n".join(parts + ([""] + after if after else []))


def render_train(r: Mapping[str, Any], width: int | None = None) -> str:
    """A training: the new version, its files, final training metrics, and its evaluation if any."""
    onnx = shown_path(r.get("onnx"), models_root()) if r.get("onnx") else f"not exported: {r.get('onnx_error')}"
    parts = [field("trained", f"{r['model_name']} v{r['version']} ({count(r.get('epochs'), 'epoch')})", width),
             field("task", task_of(r).name, width),
             field("checkpoint", f"{shown_path(r.get('checkpoint'), models_root())} "
                                 f"(sha256 {sha(r.get('checkpoint_sha256'))})", width),
             field("onnx", onnx, width),
             field("pipeline", r.get("pipeline"), width)]
    training = {k: v for k, v in (r.get("training") or {}).items() if not isinstance(v, (dict, list))}
    if training:
        parts += ["", "final training metrics:",
                  table(["METRIC", "VALUE"], [[k, _cell(v)] for k, v in training.items()], width=width)]
    if r.get("evaluation"):
        parts += ["", "evaluation:", render_eval(r["evaluation"], width)]
    if r.get("promotion"):
        parts += ["", *_after({"promotion": r["promotion"]}, width)]
    return "\n".join(parts)
