"""The composite score and custom-weights rules of docs/metrics.md ("Composite score"), table-driven."""

from __future__ import annotations

import math

import pytest

from vocab.errors import WeightsError
from vocab.scoring import (
    DEFAULT_WEIGHTS,
    WEIGHT_KEYS,
    composite_score,
    resolve_weights,
    speed_score,
    validate_weights,
)

DESIGN_DEFAULTS = {"mAP50_95": 0.35, "mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10}


def _result(**overrides):
    """A result with every weighable metric set to a distinct value."""
    base = {
        "mAP50_95": 0.41,
        "mAP50": 0.67,
        "precision": 0.72,
        "recall": 0.58,
        "f1": 2 * 0.72 * 0.58 / (0.72 + 0.58),
        "small_object_recall": 0.33,
        "medium_object_recall": 0.81,
        "large_object_recall": 0.93,
        "inference_ms": 140.0,  # speed = (500 - 140) / 450 = 0.8
    }
    base.update(overrides)
    return base


def _by_hand(result, weights):
    """DESIGN's formula written out independently: drop null terms, renormalise the rest."""
    values = {k: result.get(k) for k in WEIGHT_KEYS if k != "speed"}
    ms = result.get("inference_ms")
    values["speed"] = None if ms is None else min(1.0, max(0.0, (500.0 - ms) / 450.0))
    used = {k: w for k, w in weights.items() if values[k] is not None}
    return sum(w * values[k] for k, w in used.items()) / sum(used.values())


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("weights", [None, {}])
def test_defaults_are_designs_weights(weights):
    applied = resolve_weights(weights)
    assert applied == pytest.approx(DESIGN_DEFAULTS, abs=1e-15)
    assert set(applied) == set(DESIGN_DEFAULTS)
    assert math.fsum(applied.values()) == pytest.approx(1.0, abs=1e-12)
    assert DEFAULT_WEIGHTS == DESIGN_DEFAULTS


def test_default_score_is_the_weighted_sum():
    r = _result()
    expected = 0.35 * 0.41 + 0.20 * 0.67 + 0.20 * 0.33 + 0.15 * r["f1"] + 0.10 * 0.8
    assert composite_score(r, resolve_weights(None)) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- speed


@pytest.mark.parametrize(
    ("inference_ms", "expected"),
    [
        (0.0, 1.0),          # clamp at 1
        (10.0, 1.0),
        (50.0, 1.0),         # endpoint
        (275.0, 0.5),
        (140.0, 0.8),
        (499.0, 1 / 450),
        (500.0, 0.0),        # endpoint
        (900.0, 0.0),        # clamp at 0
        (-5.0, 1.0),
        (None, None),
    ],
)
def test_speed_score(inference_ms, expected):
    got = speed_score(inference_ms)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)
        assert 0.0 <= got <= 1.0


# --------------------------------------------------------------------------- null terms


@pytest.mark.parametrize(
    "nulls",
    [
        ("small_object_recall",),
        ("inference_ms",),  # speed unknown
        ("f1", "small_object_recall"),
        ("mAP50_95", "mAP50", "small_object_recall", "f1"),  # only speed left
    ],
)
def test_null_terms_are_dropped_and_the_rest_renormalised(nulls):
    r = _result(**dict.fromkeys(nulls))
    applied = resolve_weights(None)
    score = composite_score(r, applied)
    assert score == pytest.approx(_by_hand(r, applied), abs=1e-12)
    # Not the same as counting a null as 0.
    as_zero = composite_score(_result(**dict.fromkeys(nulls, 0.0)), applied)
    if "inference_ms" not in nulls:
        assert score != pytest.approx(as_zero, abs=1e-6)


def test_null_large_recall_with_custom_weight_renormalises():
    applied = resolve_weights({"large_object_recall": 0.2})
    r = _result(large_object_recall=None)
    rest = {k: w for k, w in applied.items() if k != "large_object_recall"}
    expected = sum(w * r[k] if k != "speed" else w * 0.8 for k, w in rest.items()) / 0.8
    assert composite_score(r, applied) == pytest.approx(expected, abs=1e-12)


def test_all_terms_null_gives_none():
    r = {k: None for k in WEIGHT_KEYS}
    assert composite_score(r, resolve_weights(None)) is None


def test_score_bounds():
    assert composite_score(_result(**{k: 1.0 for k in WEIGHT_KEYS}, inference_ms=0.0), resolve_weights(None)) == (
        pytest.approx(1.0, abs=1e-12)
    )
    assert composite_score(_result(**{k: 0.0 for k in WEIGHT_KEYS}, inference_ms=1e6), resolve_weights(None)) == 0.0


# --------------------------------------------------------------------------- custom weights


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # A key outside the defaults: kept, defaults scaled to fill 0.6.
        (
            {"precision": 0.4},
            {"precision": 0.4, "mAP50_95": 0.21, "mAP50": 0.12, "small_object_recall": 0.12, "f1": 0.09,
             "speed": 0.06},
        ),
        # A default key overridden: kept, the other four (0.9 of default mass) scaled to fill 0.5.
        (
            {"speed": 0.5},
            {"speed": 0.5, "mAP50_95": 0.35 / 0.9 * 0.5, "mAP50": 0.20 / 0.9 * 0.5,
             "small_object_recall": 0.20 / 0.9 * 0.5, "f1": 0.15 / 0.9 * 0.5},
        ),
        # Given weights summing to exactly 1: the remaining defaults get 0.
        (
            {"mAP50": 0.5, "recall": 0.5},
            {"mAP50": 0.5, "recall": 0.5, "mAP50_95": 0.0, "small_object_recall": 0.0, "f1": 0.0, "speed": 0.0},
        ),
        # A zero weight is kept as given (0) and the defaults still fill the rest.
        (
            {"speed": 0},
            {"speed": 0.0, "mAP50_95": 0.35 / 0.9, "mAP50": 0.20 / 0.9, "small_object_recall": 0.20 / 0.9,
             "f1": 0.15 / 0.9},
        ),
        # Integers are numbers.
        (
            {"medium_object_recall": 1},
            {"medium_object_recall": 1.0, "mAP50_95": 0.0, "mAP50": 0.0, "small_object_recall": 0.0, "f1": 0.0,
             "speed": 0.0},
        ),
    ],
)
def test_custom_weights_kept_and_defaults_scaled_to_fill(given, expected):
    applied = resolve_weights(given)
    assert set(applied) == set(expected)
    for key, value in expected.items():
        assert applied[key] == pytest.approx(value, abs=1e-12), key
    for key, value in given.items():
        assert applied[key] == value  # kept exactly as given
    assert math.fsum(applied.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Every default key given: nothing left to fill with, so the given weights are normalised.
        (
            {"mAP50_95": 0.1, "mAP50": 0.1, "small_object_recall": 0.1, "f1": 0.1, "speed": 0.1},
            {"mAP50_95": 0.2, "mAP50": 0.2, "small_object_recall": 0.2, "f1": 0.2, "speed": 0.2},
        ),
        (
            {"mAP50_95": 0.3, "mAP50": 0.1, "small_object_recall": 0.0, "f1": 0.0, "speed": 0.1, "recall": 0.0},
            {"mAP50_95": 0.6, "mAP50": 0.2, "small_object_recall": 0.0, "f1": 0.0, "speed": 0.2, "recall": 0.0},
        ),
        (dict(DESIGN_DEFAULTS), dict(DESIGN_DEFAULTS)),
    ],
)
def test_all_defaults_given_are_normalised(given, expected):
    applied = resolve_weights(given)
    assert applied == pytest.approx(expected, abs=1e-12)
    assert math.fsum(applied.values()) == pytest.approx(1.0, abs=1e-12)


def test_custom_weights_score():
    applied = resolve_weights({"recall": 0.3, "large_object_recall": 0.1})
    r = _result()
    assert composite_score(r, applied) == pytest.approx(_by_hand(r, applied), abs=1e-12)


# --------------------------------------------------------------------------- bad weights


@pytest.mark.parametrize(
    ("weights", "fragments"),
    [
        ({"mAP": 0.2}, ["unknown", "'mAP'"]),
        ({"speed_score": 0.1}, ["unknown", "'speed_score'"]),
        ({"mAP50": -0.1}, ["'mAP50'", ">= 0"]),
        ({"speed": -1e-9}, ["'speed'", ">= 0"]),
        ({"f1": True}, ["'f1'", "number", "True"]),
        ({"f1": False}, ["'f1'", "number", "False"]),
        ({"recall": "0.2"}, ["'recall'", "number", "'0.2'"]),
        ({"recall": None}, ["'recall'", "number", "None"]),
        ({"recall": [0.1]}, ["'recall'", "number"]),
        ({"precision": float("nan")}, ["'precision'", "finite"]),
        ({"precision": float("inf")}, ["'precision'", "finite"]),
        ({"mAP50": 0.6, "recall": 0.5}, ["sum", "over 1"]),
        ({"speed": 1.5}, ["sum", "over 1"]),
        ({k: 0.2 for k in WEIGHT_KEYS}, ["sum", "over 1"]),
        ([("mAP50", 0.5)], ["object"]),
        ("mAP50=0.5", ["object"]),
        ({"mAP50_95": 0, "mAP50": 0, "small_object_recall": 0, "f1": 0, "speed": 0}, ["sum to 0"]),
    ],
)
def test_bad_weights_raise_weights_error_naming_the_problem(weights, fragments):
    with pytest.raises(WeightsError) as info:
        resolve_weights(weights)
    message = str(info.value)
    assert info.value.detail == message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("weights", [{"mAP50": 0.7, "recall": 0.3}, {"speed": 1.0}, {"f1": 0.1 + 0.2 + 0.7}])
def test_sum_of_exactly_one_is_accepted(weights):
    assert validate_weights(weights) == {k: float(v) for k, v in weights.items()}


@pytest.mark.parametrize(("speed", "expected"), [
    ({"preprocess": 0.5, "inference": 12.5, "postprocess": 1.0}, 12.5),
    ({"preprocess": 0.5}, None),  # the validator reported no inference time
    ({"inference": None}, None),
    ({"inference": float("nan")}, None),
    (None, None),
])
def test_a_missing_validator_speed_is_null_not_zero_ms(speed, expected):
    from evaluation.eval_common import speed_ms

    assert speed_ms(speed, "inference") == expected


def test_a_null_speed_drops_the_speed_term_instead_of_scoring_it_fastest():
    metrics = {"mAP50_95": 0.5, "mAP50": 0.7, "small_object_recall": 0.4, "f1": 0.6}
    unknown = composite_score({**metrics, "inference_ms": None}, DEFAULT_WEIGHTS)
    # Recomputed by hand: the four accuracy terms, renormalised over their weights (0.9).
    by_hand = (0.35 * 0.5 + 0.20 * 0.7 + 0.20 * 0.4 + 0.15 * 0.6) / 0.90
    assert unknown == pytest.approx(by_hand)
    assert unknown < composite_score({**metrics, "inference_ms": 0.0}, DEFAULT_WEIGHTS)  # 0 ms would win
