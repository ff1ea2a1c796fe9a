"""Promotion decisions judged like with like (issue 14), in process (see tests/promotion_harness.py).

Real evaluations of the committed checkpoints on a synthetic val set, a real
SQLite ledger and the daemon's own Promoter; expected scores are recomputed
from stored rows with ``composite_score``, not read off the decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.scoring import composite_score, resolve_weights
from tests.conftest import EVAL_IMGSZ
from tests.promotion_harness import Harness

pytestmark = pytest.mark.ultralytics


@pytest.fixture
def harness(tmp_path: Path, ultralytics_env: Path, synth_dataset: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, synth_dataset)
    try:
        yield h
    finally:
        h.close()


def test_the_incumbent_is_judged_at_the_candidates_settings(harness: Harness, weak_pt: Path,
                                                            strong_pt: Path) -> None:
    """current.pt evaluated by hand at another image size only: that score is never the baseline; the
    incumbent is evaluated first at the candidate's settings, and that evaluation is the baseline."""
    current = harness.place(weak_pt, "current.pt")
    other_size = harness.evaluate(harness.spec(current, imgsz=EVAL_IMGSZ + 64))
    assert other_size["imgsz"] == EVAL_IMGSZ + 64

    decision = harness.evaluate_and_consider(harness.spec(harness.place(strong_pt, "v2.pt"), version=2))

    at_settings = harness.evaluate(harness.spec(weak_pt))  # a cache hit (same content): what the decision used
    assert at_settings["cached"] is True and at_settings["imgsz"] == EVAL_IMGSZ
    weights = resolve_weights(None)
    assert decision["previous_score"] == pytest.approx(composite_score(at_settings, weights), abs=1e-12)
    assert decision["previous_score"] != pytest.approx(composite_score(other_size, weights), abs=1e-9)
    assert f"eval {at_settings['eval_id']}" in decision["reason"], decision["reason"]
    assert decision["decision"] == "promoted", decision

    # A later evaluation of the new current.pt at another size does not become the next baseline either.
    newest_other = harness.evaluate(harness.spec(harness.models_root / harness.name / "current.pt",
                                                 imgsz=EVAL_IMGSZ + 64))
    again = harness.evaluate_and_consider(harness.spec(harness.place(weak_pt, "v3.pt"), version=3))
    strong_at_settings = harness.evaluate(harness.spec(strong_pt))
    assert again["previous_score"] == pytest.approx(composite_score(strong_at_settings, weights), abs=1e-12)
    assert f"eval {newest_other['eval_id']}" not in again["reason"]
    assert again["decision"] == "refused", again
