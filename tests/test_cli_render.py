"""What ``vision-eval`` prints, rendered in-process from hand-written result dicts of every task (no daemon):
each task's own metrics (read from ``vocab.tasks``), at a narrow (60) and a wide (160) terminal, never
wider than the terminal and never losing a word of a reason; paths relative to the models root, shortened
from the left only when they must be. Also: importing the CLI loads no server library."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from vision_eval.render import render_compare, render_eval, render_train
from vision_eval.render_models import render_jobs, render_model
from vision_eval.render_rankings import render_history, render_leaderboard
from vocab.tasks import TASKS

WIDTHS = (60, 160)
REASON = ("gain 0.1575 [0.1262, 0.2154] (interval of the paired bootstrap over 24 images, 1000 resamples) "
          "does not clear min_delta 0.2 required by the gates, so current.pt keeps v2")
WARNING = "the checkpoint was trained at imgsz 192 and is evaluated at 640: compare it with results at 640 only"


def cells(line: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def words(text: str) -> str:
    return " ".join(text.split())


def fits(out: str, width: int) -> None:
    wide = [line for line in out.splitlines() if cells(line) > width]
    assert not wide, "\n".join(wide)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of the test's own: the default models root is ``<home>/.llamafarm/models/vision``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path / ".llamafarm" / "models" / "vision"


def metric_values(task: str) -> dict[str, float]:
    """A distinct value per metric of the task: 0.5101, 0.5202, ..."""
    return {m: round(0.5 + 0.0101 * (i + 1), 4) for i, m in enumerate(TASKS[task].metrics)}


def per_class(task: str) -> dict[str, dict[str, Any]]:
    if task == "classification":
        return {"daisy": {"precision": 0.9, "recall": 0.8, "f1": 0.8471, "support": 10},
                "rose": {"precision": 0.8182, "recall": 0.9, "f1": 0.8571, "support": 10}}
    extra = {"mask_ap50": 0.61} if task == "segmentation" else {"pose_ap50": 0.41} if task == "pose" else {}
    return {"car": {"ap50": 0.7, "ap50_95": 0.4, "precision": 0.8, "recall": 0.6, "support": 15, **extra}}


def result(task: str, root: Path) -> dict[str, Any]:
    """An eval job's result of the task, as the daemon shapes it."""
    r: dict[str, Any] = {
        "task": task, "model_name": "my-detector", "version": 3, "model_path": str(root / "my-detector" / "v3.pt"),
        "checkpoint_sha256": "ab" * 32, "dataset": "/srv/data/traffic/data.yaml", "images": 24, "split": "val",
        "imgsz": 640, "batch": 16, "format": "pt", "device": "cpu", "ultralytics_version": "8.4.190", "eval_id": 12,
        "score": 0.4321, **metric_values(task), "inference_ms": 20.51, "inference_ms_iqr": 1.84,
        "inference_batches": 2, "preprocess_ms": 1.2, "postprocess_ms": 0.8, "model_size_mb": 5.94,
        "per_class_metrics": per_class(task), "warnings": [WARNING],
        "promotion": {"decision": "refused", "reason": REASON},
    }
    if TASKS[task].size_recall:
        r.update(small_object_recall=0.3, small_object_count=10, small_object_found=3)
    if task == "classification":
        r["confusion_matrix"] = {"labels": ["daisy", "rose"], "rows": "predicted", "columns": "true",
                                 "matrix": [[8, 1], [2, 9]]}
    return r


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("task", sorted(TASKS))
def test_an_evaluation_shows_its_tasks_own_metrics_at_any_width(task: str, width: int, home: Path) -> None:
    out = render_eval(result(task, home), width)
    fits(out, width)
    lines = out.splitlines()
    for name, value in metric_values(task).items():
        assert any(line.split()[:2] == [name, f"{value:.4f}"] for line in lines), (name, out)
    others = {m for t in TASKS.values() for m in t.metrics} - set(TASKS[task].metrics)
    assert not [line for line in lines if line.split() and line.split()[0] in others], out
    assert ("small_object_recall" in out) == TASKS[task].size_recall
    assert words(f"promotion: refused: {REASON}") in words(out) and words(WARNING) in words(out)
    assert "my-detector/v3.pt" in out and str(home) not in out  # relative to the models root
    assert any(line.split()[:3] == ["inference_ms", "20.5", "ms"] for line in lines)
    assert "IQR 1.8 ms over 2 batches" in words(out) and "5.9 MB" in out
    assert ("3/10 objects found" in words(out)) == TASKS[task].size_recall


@pytest.mark.parametrize("width", WIDTHS)
def test_a_classification_shows_per_class_f1_and_its_confusion_matrix(width: int, home: Path) -> None:
    out = render_eval(result("classification", home), width)
    fits(out, width)
    lines = out.splitlines()
    assert "confusion matrix (rows: predicted class, columns: true class):" in words(out)
    if width >= 60:  # two classes fit as a grid: each predicted class a row, the counts by true class
        assert [line.split() for line in lines if line.split()[:1] in (["daisy"], ["rose"])][-2:] == [
            ["daisy", "8", "1"], ["rose", "2", "9"]]
    header = next(line for line in lines if line.startswith("CLASS"))
    assert header.split() == ["CLASS", "P", "R", "F1", "SUPPORT"]
    assert next(line for line in lines if line.startswith("rose ")).split() == ["rose", "0.8182", "0.9000", "0.8571", "10"]
    alias = render_eval({**result("classification", home), "task": "classify"}, width)  # ultralytics' name
    assert "task        classification" in alias and any(line.split()[:1] == ["top1"] for line in alias.splitlines())


@pytest.mark.parametrize("width", WIDTHS)
def test_a_comparison_shows_mcnemar_beside_the_intervals(width: int) -> None:
    metrics = {m: {"a": 0.9, "b": 0.8, "diff": 0.1, "better": "a"} for m in TASKS["classification"].compared_metrics}
    metrics["inference_ms"] = {"a": 3.0, "b": 2.5, "diff": 0.5, "better": "b"}
    stats = {"n_images": 40, "n_resamples": 1000, "seed": 0, "alpha": 0.05,
             "metrics": {"top1": {"a": 0.9, "b": 0.8, "diff": 0.1, "ci_low": 0.025, "ci_high": 0.175,
                                  "p_value": 0.01, "significant": True}},
             "mcnemar": {"b": 7, "c": 1, "p_value": 0.0703, "significant": False}}
    r = {"task": "classification", "model_a": "flowers-v2", "model_b": "flowers-v1", "winner": "flowers-v2",
         "score_diff": 0.1, "metrics": metrics, "statistics": stats}
    out = render_compare(r, width)
    fits(out, width)
    assert ("McNemar's exact test: 7 images right only with A (b), 1 image right only with B (c); p 0.070, "
            "not significant") in words(out)
    order = [name for name in re.findall(r"^(?:METRIC:\s+)?(\w+)", out, re.M) if name in metrics]  # table or cards
    assert order[:4] == ["top1", "top5", "macro_f1", "inference_ms"]  # vocab.tasks' order
    if width == 160:
        top1 = next(line for line in out.splitlines() if line.startswith("top1"))
        assert "[+0.0250, +0.1750]" in top1 and top1.split()[-2:] == ["0.010", "yes"]


def board_row(task: str, rank: int, model: str, group: Any) -> dict[str, Any]:
    return {"rank": rank, "model_name": model, "version": rank, "score": 0.9 - rank / 10, **metric_values(task),
            "small_object_recall": 0.3, "inference_ms": 12.5, "dataset": "/srv/data/x/data.yaml", "task": task,
            "timestamp": "2026-01-01T00:00:00Z", "group": group}


@pytest.mark.parametrize("width", WIDTHS)
def test_a_grouped_leaderboard_prints_one_table_per_group_under_its_settings(width: int) -> None:
    det = {"dataset": "/srv/data/x/data.yaml", "dataset_fingerprint": "3f2a9c" * 4, "task": "detection",
           "split": "val", "format": "pt", "imgsz": 640}
    cls = "flowers (content 1234abcd), classification, split val, format onnx, imgsz 224"
    rows = [board_row("detection", 1, "det-a", det), board_row("detection", 2, "det-b", det),
            board_row("classification", 1, "flowers", cls)]
    out = render_leaderboard(rows, width)
    fits(out, width)
    first, second = out.split("\n\n" if width == 160 else "\n\nflowers")[:2]
    assert words("dataset /srv/data/x/data.yaml, content 3f2a9c3f2a9c, task detection, split val, format pt, "
                 "imgsz 640") in words(first)
    assert words(cls.removeprefix("flowers")) in words(second)
    assert "mAP50_95" in first and "top1" not in first and "top1" in second and "mAP50_95" not in second
    if width == 160:  # the rank restarts per group; the heading names the dataset, so no DATASET column
        assert [line.split()[0] for line in first.splitlines()[2:]] == ["1", "2"] and "DATASET" not in first
        assert second.splitlines()[2].split()[:2] == ["1", "flowers"] and "DATASET" in second
    ungrouped = render_leaderboard([{**r, "group": None} for r in rows[:2]], width)
    assert "/srv/data/x/data.yaml" in ungrouped and "RANK" in ungrouped


@pytest.mark.parametrize("width", (60, 240))  # two tasks' metrics side by side need a very wide terminal
def test_history_shows_the_settings_of_each_evaluation(width: int) -> None:
    rows = [{**board_row("segmentation", 1, "seg", None), "eval_id": 7, "imgsz": 640, "split": "test",
             "format": "onnx", "trigger": "watcher", "job_id": "j1"},
            {**board_row("detection", 1, "seg", None), "eval_id": 6, "imgsz": 320, "split": "val", "format": "pt",
             "trigger": "api", "job_id": "j0"}]
    out = render_history(rows, width)
    fits(out, width)
    if width == 240:
        header, seg, det = out.splitlines()
        names = header.split()
        assert {"TASK", "IMGSZ", "SPLIT", "FORMAT", "mask_mAP50_95", "mAP50_95"} <= set(names)
        assert seg.split()[names.index("TASK")] == "segmentation" and det.split()[names.index("TASK")] == "detection"
        assert seg.split()[names.index("mask_mAP50_95")] == "0.5101" and det.split()[names.index("mask_mAP50_95")] == "-"
    else:
        assert ["IMGSZ:", "640"] in [line.split() for line in out.splitlines()]
        assert ["FORMAT:", "onnx"] in [line.split() for line in out.splitlines()]


STATUSES = {  # as daemon.app.version_status words them (tests/test_version_status.py checks the rules)
    2: ("current", "2026-01-01T00:00:01Z", "current.pt holds these bytes (promoted: first version of my-detector)"),
    3: ("refused", "2026-01-02T00:00:01Z", REASON),
    4: ("retry", "2026-03-01T12:00:00Z", "dataset /srv/data/x/data.yaml is missing: it was moved or deleted (2 failed "
                                         "attempts; retried at 2026-03-01T12:06:00Z)"),
    5: ("skipped", "2026-01-03T00:00:00Z", "not a checkpoint: the file holds no model (ultralytics could not load it)"),
    6: ("waiting", None, "being written: its size changes (for 12.5 s)"),
    7: ("evaluated", "2026-01-01T00:00:00Z", "score 0.4000 on /srv/data/x/data.yaml (eval 11); no promotion decision "
                                             "on it"),
    8: ("current", "2026-01-01T00:00:01Z", "current.pt holds these bytes (promoted: first version of my-detector)"),
}


def model_detail(root: Path) -> dict[str, Any]:
    folder = root / "my-detector"
    shas = {2: "cd", 3: "ab", 4: "ef", 5: "12", 6: None, 7: "77", 8: "cd"}
    return {
        "name": "my-detector", "path": str(folder), "current": {"sha256": "cd" * 32, "version": 2},
        "versions": [{"version": n, "path": str(folder / f"v{n}.pt"), "sha256": sha and sha * 32, "size_mb": 5.94,
                      "onnx": None, "status": STATUSES[n][0], "since": STATUSES[n][1], "reason": STATUSES[n][2],
                      "same_bytes_as": 2 if n == 8 else None} for n, sha in shas.items()],
        "evaluations": [{"eval_id": 12, "timestamp": "2026-01-02T00:00:00Z", "version": 3, "score": 0.5, "mAP50": 0.7,
                         "dataset": "/srv/data/x/data.yaml", "checkpoint_sha256": "ab" * 32},
                        {"eval_id": 11, "timestamp": "2026-01-01T00:00:00Z", "version": 7, "score": 0.4,
                         "dataset": "/srv/data/x/data.yaml", "checkpoint_sha256": "77" * 32}],
        "promotions": [{"id": 4, "timestamp": "2026-01-02T00:00:01Z", "decision": "refused", "actor": "watcher",
                        "version": 3, "new_score": 0.5, "previous_score": 0.48, "new_sha256": "ab" * 32,
                        "reason": REASON},
                       {"id": 3, "timestamp": "2026-01-01T00:00:01Z", "decision": "promoted", "actor": "api",
                        "version": 2, "new_sha256": "cd" * 32, "reason": "first version of my-detector"}],
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_a_models_view_shows_every_checkpoints_status_and_whole_reason(width: int, home: Path) -> None:
    out = render_model(model_detail(home), width)
    fits(out, width)
    text = words(out)
    checkpoints = out.split("checkpoints (paths under ~/.llamafarm/models/vision):")[1]
    expected = {f"v{n}.pt": (status, reason) for n, (status, _since, reason) in STATUSES.items()}
    expected["v8.pt"] = ("current", f"{STATUSES[8][2]} (the same bytes as v2)")
    blocks = checkpoints.split("\n\n") if width == 60 else checkpoints.split("my-detector/")[1:]
    for name, (status, reason) in expected.items():
        block = words(next(b for b in blocks if f"my-detector/{name}" in b or b.startswith(name)))
        assert status in block.split() and words(reason) in block, (name, block)
    assert words(REASON) in text and str(home) not in out


@pytest.mark.parametrize("width", WIDTHS)
def test_jobs_and_training_keep_whole_errors_and_count_their_units(width: int, home: Path) -> None:
    error = "InternalError: the worker running the job exited (killed by signal 9, probably out of memory); " * 2
    jobs = {"jobs": [{"job_id": "j1", "kind": "eval", "status": "failed", "progress": 0.4, "error": error,
                      "created_at": "2026-01-01T00:00:00Z", "completed_at": "2026-01-01T00:01:00Z"}]}
    out = render_jobs(jobs, width)
    fits(out, width)
    assert words(error) in words(out)
    trained = {"model_name": "fresh", "version": 1, "epochs": 1, "checkpoint": str(home / "fresh" / "v1.pt"),
               "pipeline": "train, then evaluate", "onnx": None, "onnx_error": "onnx is not installed"}
    out = render_train(trained, width)
    assert out.splitlines()[0].split() == ["trained", "fresh", "v1", "(1", "epoch)"] and "fresh/v1.pt" in out
    assert "(2 epochs)" in render_train({**trained, "epochs": 2}, width)


def test_importing_the_cli_loads_no_server_library() -> None:
    code = ("import json, sys, vision_eval.cli\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('aiohttp', 'numpy', 'torch', 'ultralytics', 'daemon', 'handlers', 'store', 'evaluation'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [], out.stdout
