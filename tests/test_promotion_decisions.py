"""Promotion decisions judged like with like (issue 14), in process (see tests/promotion_harness.py).

Real evaluations of the committed checkpoints on a synthetic val set, a real
SQLite ledger and the daemon's own Promoter; expected scores are recomputed
from stored rows with ``composite_score``, not read off the decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EVAL_IMGSZ
from tests.promotion_harness import Harness, resave_in_process
from tests.watch_fixtures import sha256_file
from vocab.config import PromotionConfig
from vocab.scoring import composite_score, resolve_weights

pytestmark = pytest.mark.ultralytics
WORDS = {"score": "score gain", "accuracy_score": "accuracy-part gain"}


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
    # at_settings is a row of its own for the path asked (issue 16); it points at the evaluation the decision named.
    assert f"eval {at_settings['source_eval_id']}" in decision["reason"], decision["reason"]
    assert decision["decision"] == "promoted", decision

    # A later evaluation of the new current.pt at another size does not become the next baseline either.
    newest_other = harness.evaluate(harness.spec(harness.models_root / harness.name / "current.pt",
                                                 imgsz=EVAL_IMGSZ + 64))
    again = harness.evaluate_and_consider(harness.spec(harness.place(weak_pt, "v3.pt"), version=3))
    strong_at_settings = harness.evaluate(harness.spec(strong_pt))
    assert again["previous_score"] == pytest.approx(composite_score(strong_at_settings, weights), abs=1e-12)
    assert f"eval {newest_other['eval_id']}" not in again["reason"]
    assert again["decision"] == "refused", again


@pytest.mark.parametrize("require_significant", [True, False])
def test_identical_weights_in_new_bytes_are_refused(tmp_path: Path, ultralytics_env: Path, synth_dataset: Path,
                                                    strong_pt: Path, require_significant: bool) -> None:
    """A re-saved copy of the promoted checkpoint (the same state_dict through torch.save: new bytes, another
    sha256) never replaces it, under either rule, and the ledger says why."""
    h = Harness(tmp_path, synth_dataset, PromotionConfig(require_significant=require_significant,
                                                         bootstrap_resamples=300))
    try:
        first = h.evaluate_and_consider(h.spec(h.place(strong_pt, "v1.pt"), version=1))
        assert first["decision"] == "promoted"
        copy = resave_in_process(strong_pt, h.models_root / h.name / "v2.pt")
        assert sha256_file(copy) != sha256_file(strong_pt)
        decision = h.evaluate_and_consider(h.spec(copy, version=2))
        assert decision["decision"] == "refused", decision
        assert "predictions identical to the incumbent current.pt" in decision["reason"], decision["reason"]
        assert decision["reason"].startswith(f"{WORDS[decision['gain']['basis']]} {decision['gain']['value']:+.4f}")
        assert (h.models_root / h.name / "current.pt").read_bytes() == strong_pt.read_bytes()
        row = h.ledger()[0]
        assert (row["decision"], row["reason"]) == ("refused", decision["reason"])
        assert row["details"]["gain"] == decision["gain"]
    finally:
        h.close()


def test_a_clearly_better_checkpoint_is_promoted_with_its_gain_and_interval(harness: Harness, weak_pt: Path,
                                                                         strong_pt: Path) -> None:
    first = harness.evaluate_and_consider(harness.spec(harness.place(weak_pt, "v1.pt"), version=1))
    assert first["decision"] == "promoted" and first["gain"] is None  # nothing to gain over
    decision = harness.evaluate_and_consider(harness.spec(harness.place(strong_pt, "v2.pt"), version=2))
    assert decision["decision"] == "promoted", decision
    weights = resolve_weights(None)
    strong, weak = harness.evaluate(harness.spec(strong_pt)), harness.evaluate(harness.spec(weak_pt))
    gain = decision["gain"]
    if gain["basis"] == "score":
        expected = composite_score(strong, weights) - composite_score(weak, weights)
    else:  # the score without its speed term (too few timed batches for a speed interval)
        expected = composite_score({**strong, "inference_ms": None}, weights) \
            - composite_score({**weak, "inference_ms": None}, weights)
    assert gain["value"] == pytest.approx(expected, abs=1e-12)
    assert gain["ci_low"] > 0 and gain["ci_low"] <= gain["value"] <= gain["ci_high"]
    assert decision["reason"].startswith(
        f"{WORDS[gain['basis']]} {gain['value']:+.4f} [{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}]")
    assert ": beyond noise; score " in decision["reason"]
    assert "gates passed" in decision["reason"]
    assert (harness.models_root / harness.name / "current.pt").read_bytes() == strong_pt.read_bytes()
    row = harness.ledger()[0]
    assert row["reason"] == decision["reason"] and row["details"]["gain"] == gain
