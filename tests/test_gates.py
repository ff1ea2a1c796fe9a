"""Promotion gates end to end: a paired bootstrap against the incumbent decides, and refusals say why.

A real service in the test process (HTTP, SQLite, the worker tasks in a thread:
tests.inprocess.InProcessDaemon), real checkpoints. The class-regression rule itself
is unit-tested in test_compare_stats.py on synthetic evidence (our fixture
checkpoints cannot be made to win overall while losing one class); here the
plumbing is proven: gates from the request reach the decision, the
bootstrap runs on both evaluations' evidence, and a refused decision carries
the failed gate in the job result and in the promotions ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, DaemonApi, make_dataset, place_model
from tests.inprocess import InProcessDaemon
from tests.watch_fixtures import resave_checkpoint

pytestmark = pytest.mark.ultralytics

GATES = {"require_significant": True, "max_class_regression": 0.0, "min_class_support": 1,
         "max_size_recall_regression": 0.0}


def _eval_promote(daemon: DaemonApi, model_path: Path, dataset: Path, gates: dict[str, Any] | None) -> dict[str, Any]:
    job = daemon.submit_eval(model=str(model_path), dataset=str(dataset), auto_promote=True, gates=gates)
    done = daemon.wait_job(job["job_id"])
    assert done["status"] == "completed", done
    return done["result"]["promotion"]


def test_gates_promote_a_significant_gain_and_refuse_no_gain(tmp_path: Path) -> None:
    resaved = tmp_path / "strong-resaved.pt"
    resave = resave_checkpoint(STRONG_PT, resaved, "gates")  # same weights, other bytes
    dataset = make_dataset(tmp_path / "data", n_val=24, seed=21)
    daemon = InProcessDaemon(tmp_path / "daemon", config={"promotion": {"bootstrap_resamples": 300}})
    v1 = place_model(daemon.models_root, "gated", WEAK_PT, "v1.pt")
    v2 = place_model(daemon.models_root, "gated", STRONG_PT, "v2.pt")
    daemon.start()
    try:
        first = _eval_promote(daemon, v1, dataset, GATES)
        assert first["decision"] == "promoted" and first["gates"] == []  # nothing to beat: no gates

        better = _eval_promote(daemon, v2, dataset, GATES)
        assert better["decision"] == "promoted", better
        assert better["gates"] == [] and "gates passed" in better["reason"]
        assert better["significance"]["accuracy_score"]["significant"] is True
        assert better["significance"]["accuracy_score"]["ci_low"] > 0

        assert resave.wait(120) == 0
        v3 = place_model(daemon.models_root, "gated", resaved, "v3.pt")
        # The same weights under other bytes: identical predictions, whatever timing noise did to the score.
        same = _eval_promote(daemon, v3, dataset, {"require_significant": True})
        assert same["decision"] == "refused", same
        assert "predictions identical to the incumbent current.pt" in same["reason"], same
        assert same["significance"]["accuracy_score"]["diff"] == 0.0, same
        ledger = daemon.http.get("/v1/vision/models/gated", timeout=10).json()["promotions"]
        assert [p["decision"] for p in ledger] == ["refused", "promoted", "promoted"]
        assert ledger[1]["details"]["gate_settings"]["require_significant"] is True
        assert ledger[1]["details"]["significance"]["accuracy_score"]["significant"] is True
    finally:
        if resave.poll() is None:
            resave.kill()
        daemon.stop()


def test_gate_refusal_names_the_failed_gate_in_the_result_and_the_ledger(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", n_val=24, seed=22)
    daemon = InProcessDaemon(tmp_path / "daemon", config={"promotion": {"bootstrap_resamples": 300, "bootstrap_seed": 7}})
    v1 = place_model(daemon.models_root, "g2", WEAK_PT, "v1.pt")
    v2 = place_model(daemon.models_root, "g2", STRONG_PT, "v2.pt")
    daemon.start()
    try:
        _eval_promote(daemon, v1, dataset, None)
        # The same paired bootstrap the promotion will run (same evidence, resamples and seed; the candidate
        # is a, the incumbent b, so every diff is the candidate's gain).
        r = daemon.http.post("/v1/vision/eval/compare", timeout=30, json={
            "model_a": str(v2), "model_b": str(v1), "dataset": str(dataset), "imgsz": 320,
            "bootstrap_resamples": 300, "bootstrap_seed": 7})
        stats = daemon.wait_job(r.json()["job_id"])["result"]
        basis = stats["statistics"]["gain_basis"]  # the score's interval, or accuracy's without batch timings
        shown = stats["statistics"]["metrics"][basis]  # the quantity the decision's gain is of, with its interval
        gain_low = shown["ci_low"]
        score_gain = stats["metrics"]["score"]["diff"]  # the spec's diff: a - b
        assert score_gain > gain_low, (score_gain, gain_low)
        # A margin the point estimate clears but the interval's lower bound does not: only the gate refuses.
        margin = gain_low + (score_gain - gain_low) / 2
        refused = _eval_promote(daemon, v2, dataset, {"require_significant": True, "min_delta": margin})
        assert refused["decision"] == "refused", refused
        # One quantity per figure: the gain printed is the difference its interval is of.
        words = {"score": "score gain", "accuracy_score": "accuracy-part gain"}[basis]
        assert refused["reason"].startswith(
            f"{words} {shown['diff']:+.4f} [{shown['ci_low']:+.4f}, {shown['ci_high']:+.4f}]"), refused["reason"]
        assert refused["gain"]["value"] == shown["diff"] and refused["gain"]["basis"] == basis
        assert ": not beyond noise; refused by promotion gates: require_significant" in refused["reason"]
        gate = refused["gates"][0]
        assert gate["gate"] == "require_significant" and gate["threshold"] == margin
        assert gate["ci_low"] == gain_low
        ledger = daemon.http.get("/v1/vision/models/g2", timeout=10).json()["promotions"]
        assert ledger[0]["decision"] == "refused"
        assert ledger[0]["details"]["gates"][0]["gate"] == "require_significant"
        current = (daemon.models_root / "g2" / "current.pt").read_bytes()
        assert current == v1.read_bytes(), "a refused candidate must not touch current.pt"
    finally:
        daemon.stop()


@pytest.mark.parametrize("gates, word", [
    ({"bogus": True}, "unknown gate"),
    ({"require_significant": "yes"}, "require_significant"),
    ({"min_class_support": -1}, "min_class_support"),
    ({"max_class_regression": -0.1}, "max_class_regression"),
    ([1, 2], "object"),
])
def test_bad_gates_are_a_400_naming_the_problem(tmp_path: Path, gates: Any, word: str) -> None:
    from vocab.contract.requests import Gates
    from vocab.contract.validation import parse
    from vocab.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=word):
        parse(Gates, gates, "gate")
