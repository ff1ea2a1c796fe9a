"""The export-parity gate (issue 12, item 2) and ONNX evaluation through the API.

Unit level: ``parity_verdict`` on hand-made paired statistics.

Daemon level: a real service in the test process (``tests.inprocess.InProcessDaemon``: watcher
off, the worker tasks in a thread) decides
promotions of candidates submitted with ``auto_promote``. The candidate
v2.pt (strong.pt) beats the incumbent v1.pt (weak.pt), but its v2.onnx is the
(static) export of weak.pt: it is refused, with the parity numbers in the
ledger. The same weights with their own (dynamic) export (v3.pt / v3.onnx)
are promoted.
Exports are made in the test process, offline (``simplify=False``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from evaluation.export_parity import parity_verdict
from tests.daemon_fixtures import (
    API_IMGSZ,
    STRONG_PT,
    WEAK_PT,
    DaemonApi,
    make_dataset,
    place_model,
)
from tests.inprocess import InProcessDaemon

LIMITS = {"max_delta": 0.005, "max_class_delta": 0.02, "min_class_support": 10}


def _stats(pt: float, onnx: float, classes: dict[str, tuple[int, float | None, float | None]]) -> dict[str, Any]:
    """Paired statistics as the daemon computes them: the export is a, its .pt b, every diff a - b."""
    per_class = {n: {"support": s, "a": co, "b": cp, "diff": None if co is None or cp is None else co - cp}
                 for n, (s, cp, co) in classes.items()}
    return {"metrics": {"mAP50_95": {"a": onnx, "b": pt, "diff": onnx - pt, "ci_low": None, "ci_high": None}},
            "per_class": per_class}


def test_parity_verdict_thresholds() -> None:
    same = parity_verdict(_stats(0.60, 0.6004, {"red": (20, 0.9, 0.899)}), **LIMITS)
    assert same["verdict"] == "pass" and same["failures"] == []
    assert same["delta_mAP50_95"] == pytest.approx(0.0004)
    off = parity_verdict(_stats(0.60, 0.594, {"red": (20, 0.9, 0.9)}), **LIMITS)
    assert off["verdict"] == "fail" and "max_export_delta" in off["failures"][0]
    up = parity_verdict(_stats(0.60, 0.606, {}), **LIMITS)  # a difference either way is not parity
    assert up["verdict"] == "fail"
    cls = parity_verdict(_stats(0.60, 0.60, {"red": (20, 0.9, 0.87), "blue": (3, 0.9, 0.1)}), **LIMITS)
    assert cls["verdict"] == "fail" and len(cls["failures"]) == 1 and "class red" in cls["failures"][0]
    assert cls["classes"]["blue"]["delta"] == pytest.approx(-0.8)  # reported, not gated: support 3 < 10
    gone = parity_verdict(_stats(0.60, 0.60, {"red": (20, 0.9, None)}), **LIMITS)
    assert gone["verdict"] == "fail"


def test_a_fresh_checkpoint_waits_for_an_export_that_lands_after_it(tmp_path: Path) -> None:
    import asyncio
    import os

    from daemon.promote.parity import wait_for_export

    pt, onnx = tmp_path / "v1.pt", tmp_path / "v1.onnx"
    pt.write_bytes(b"checkpoint")

    async def scenario() -> bool:
        task = asyncio.create_task(wait_for_export(pt, onnx, wait_s=600.0, poll_s=0.05))
        for _ in range(5):  # several polls without an export: still waiting, the checkpoint is fresh
            await asyncio.sleep(0.05)
        assert not task.done()
        onnx.write_bytes(b"the export")  # lands after its checkpoint
        return await asyncio.wait_for(task, 60)

    assert asyncio.run(scenario()) is True
    old = tmp_path / "v2.pt"
    old.write_bytes(b"checkpoint")
    os.utime(old, (1, 1))  # an old checkpoint: no export is coming
    assert asyncio.run(wait_for_export(old, tmp_path / "v2.onnx", wait_s=600.0, poll_s=0.05)) is False
    # An export is expected only where the exporter has written exports of other versions.
    from daemon.promote.parity import _exports_expected

    assert _exports_expected(tmp_path / "v2.onnx") is True  # v1.onnx is there
    assert _exports_expected(tmp_path / "v1.onnx") is False  # only itself


def _export_as(source: Path, target: Path, *, dynamic: bool = True) -> Path:
    """Export ``source`` (dynamic ONNX at 320) and place the export at ``target``."""
    from evaluation.training import export_onnx

    work = target.parent / f".export-{target.stem}"
    work.mkdir(parents=True, exist_ok=True)
    pt = work / "model.pt"
    shutil.copyfile(source, pt)
    out = Path(export_onnx(pt, imgsz=API_IMGSZ, dynamic=dynamic)["onnx"])
    shutil.move(str(out), target)
    shutil.rmtree(work)
    return target


def _ledger(daemon: DaemonApi, name: str) -> list[dict[str, Any]]:
    rows = daemon.query("SELECT * FROM promotions WHERE model_name = ? ORDER BY id", (name,))
    return [{**dict(r), "details": json.loads(r["details"] or "{}")} for r in rows]


def _promote(daemon: DaemonApi, model: Path, dataset: Path) -> dict[str, Any]:
    job = daemon.submit_eval(model=str(model), dataset=str(dataset), auto_promote=True)
    done = daemon.wait_job(job["job_id"])
    assert done["status"] == "completed", done
    return done["result"]


@pytest.mark.usefixtures("ultralytics_env")
def test_an_export_of_another_checkpoint_is_refused_and_a_matching_one_passes(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", n_val=24, seed=31)
    daemon = InProcessDaemon(tmp_path / "daemon", config={"eval": {"imgsz": API_IMGSZ},
                                                 "promotion": {"bootstrap_resamples": 50,
                                                               "export_wait_s": 0.0}})
    models = daemon.models_root / "par"
    v1 = place_model(daemon.models_root, "par", WEAK_PT, "v1.pt")
    v2 = place_model(daemon.models_root, "par", STRONG_PT, "v2.pt")
    _export_as(WEAK_PT, models / "v2.onnx", dynamic=False)  # the (static) export of ANOTHER checkpoint
    v3 = place_model(daemon.models_root, "par", STRONG_PT, "v3.pt")
    _export_as(STRONG_PT, models / "v3.onnx")
    static = _export_as(STRONG_PT, tmp_path / "static" / "strong.onnx", dynamic=False)
    daemon.start()
    try:
        first = _promote(daemon, v1, dataset)["promotion"]
        assert first["decision"] == "promoted"
        assert first["export_parity"]["verdict"] == "skipped" and "no ONNX export" in first["export_parity"]["reason"]

        wrong = _promote(daemon, v2, dataset)
        decision = wrong["promotion"]
        assert decision["decision"] == "refused" and "export-parity" in decision["reason"], decision
        parity = decision["export_parity"]
        assert parity["verdict"] == "fail" and parity["padding"].startswith("square")
        assert abs(parity["delta_mAP50_95"]) > 0.005
        # A static export is compared with the .pt padded to the same square: a reference evaluation,
        # neither on the leaderboard nor the candidate's own result.
        reference = daemon.query("SELECT rect, imgsz, format, checkpoint_sha256 FROM eval_results WHERE id = ?",
                                 (parity["eval_id_pt"],))[0]
        assert (reference["rect"], reference["imgsz"], reference["format"]) == (0, API_IMGSZ, "pt")
        assert reference["checkpoint_sha256"] == wrong["checkpoint_sha256"] and parity["eval_id_pt"] != wrong["eval_id"]
        row = _ledger(daemon, "par")[-1]
        assert row["decision"] == "refused" and row["details"]["export_parity"]["verdict"] == "fail"
        assert row["details"]["export_parity"]["delta_mAP50_95"] == pytest.approx(parity["delta_mAP50_95"])
        assert (models / "current.pt").read_bytes() == WEAK_PT.read_bytes()  # still the incumbent

        right = _promote(daemon, v3, dataset)["promotion"]
        assert right["decision"] == "promoted", right
        assert right["export_parity"]["verdict"] == "pass" and right["export_parity"]["padding"].startswith("rect")
        assert abs(right["export_parity"]["delta_mAP50_95"]) <= 0.002
        assert right["export_parity"]["eval_id_pt"] == right["eval_id"]  # a dynamic export: the candidate itself
        assert _ledger(daemon, "par")[-1]["details"]["export_parity"]["verdict"] == "pass"
        assert (models / "current.pt").read_bytes() == STRONG_PT.read_bytes()

        # The export's evaluation is in history with its format, never on the leaderboard.
        history = daemon.http.get("/v1/vision/eval/leaderboard/par", timeout=30).json()
        formats = {h["format"] for h in (history if isinstance(history, list) else history["history"])}
        assert formats == {"pt", "onnx"}
        board = daemon.http.get("/v1/vision/eval/leaderboard", timeout=30).json()
        assert all(r["checkpoint_sha256"] != parity["onnx_sha256"] for r in board)
        assert all(r["eval_id"] != parity["eval_id_pt"] for r in board)

        # A static export at 320: a request for another size is a 400 that says why; none given runs at 320.
        r = daemon.http.post("/v1/vision/eval", timeout=30,
                       json={"model": str(static), "dataset": str(dataset), "imgsz": 640})
        assert r.status_code == 400 and "static" in r.json()["detail"] and "320" in r.json()["detail"], r.text
        job = daemon.submit_eval(model=str(static), dataset=str(dataset), imgsz=None)
        done = daemon.wait_job(job["job_id"])
        assert done["status"] == "completed", done
        res = done["result"]
        assert (res["format"], res["imgsz"], res["batch"], res["export"]["dynamic"]) == ("onnx", API_IMGSZ, 1, False)
        assert res["runtime"] == "onnxruntime"

        # Splits at the door: a YAML without the named split, or an unknown split, is a 400 naming it.
        r = daemon.http.post("/v1/vision/eval", timeout=30,
                       json={"model": str(v1), "dataset": str(dataset), "split": "test"})
        assert r.status_code == 400 and "no 'test' split" in r.json()["detail"], r.text
        r = daemon.http.post("/v1/vision/eval", timeout=30,
                       json={"model": str(v1), "dataset": str(dataset), "split": "holdout"})
        assert r.status_code == 400 and "split" in r.json()["detail"], r.text
        test_board = daemon.http.get("/v1/vision/eval/leaderboard", params={"split": "test"}, timeout=30)
        assert test_board.status_code == 200 and test_board.json() == []  # every evaluation here was on val
        assert {r["split"] for r in board} == {"val"}
    finally:
        daemon.stop()
