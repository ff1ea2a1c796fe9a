"""Refused at the door: everything knowable at submit time is a 400 there, never a 500 or a failed job.

In-process: the real Service and HTTP app on a SQLite file in tmp_path, with
an executor never released, so that accepted jobs stay queued (nothing here
runs a model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.app import make_app
from tests.daemon_fixtures import STRONG_PT, make_dataset, place_model
from tests.inprocess import running_service

ZERO_WEIGHTS = {"mAP50_95": 0, "mAP50": 0, "small_object_recall": 0, "f1": 0, "speed": 0}
HUGE = "9" * 400


@pytest.fixture
async def door(tmp_path: Path, aiohttp_client: Any):
    data = make_dataset(tmp_path / "data", n_val=4, seed=0)
    place_model(tmp_path / "models", "strong", STRONG_PT)
    async with running_service(tmp_path, paths={"allowed_roots": [str(tmp_path)]},
                               eval={"imgsz": 320, "batch": 8}) as svc:
        client = await aiohttp_client(make_app(svc.facade))
        client.data = data  # type: ignore[attr-defined]
        client.root = tmp_path  # type: ignore[attr-defined]
        yield client


async def post_json(client: Any, path: str, raw: str) -> tuple[int, Any]:
    resp = await client.post(path, data=raw, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


def eval_body(client: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "strong", "dataset": str(client.data), **extra}


async def test_all_zero_weights_are_refused_in_json_form_and_every_endpoint(door: Any) -> None:
    status, body = await post_json(door, "/v1/vision/eval", json.dumps(eval_body(door, weights=ZERO_WEIGHTS)))
    assert status == 400 and "sum to 0" in body["detail"]
    resp = await door.post("/v1/vision/eval", data={**eval_body(door), "weights": json.dumps(ZERO_WEIGHTS)})
    assert resp.status == 400
    status, _ = await post_json(door, "/v1/vision/eval/compare", json.dumps(
        {"model_a": "strong", "model_b": "strong", "dataset": str(door.data), "weights": ZERO_WEIGHTS}))
    assert status == 400
    status, _ = await post_json(door, "/v1/vision/train", json.dumps(
        {"model": "strong", "dataset": str(door.data), "eval_weights": ZERO_WEIGHTS}))
    assert status == 400
    # Some zeros with defaults left to fill them are fine.
    status, _ = await post_json(door, "/v1/vision/eval", json.dumps(eval_body(door, weights={"speed": 0})))
    assert status == 202


@pytest.mark.parametrize("raw", [
    '{"model": "strong", "dataset": "%s", "imgsz": ' + HUGE + "}",
    '{"model": "strong", "dataset": "%s", "imgsz": 1e400}',
    '{"model": "strong", "dataset": "%s", "imgsz": 3' + "0" * 300 + ".5}",
    '{"model": "strong", "dataset": "%s", "weights": {"mAP50": ' + HUGE + "}}",
    '{"model": "strong", "dataset": "%s", "weights": {"mAP50": 1e999}}',
    '{"model": "strong", "dataset": "%s", "weights": {"mAP50": NaN}}',
    '{"model": "strong", "dataset": "%s", "gates": {"min_delta": ' + HUGE + "}}",
    '{"model": "strong", "dataset": "%s", "gates": {"min_delta": 1e300}}',
    '{"model": "strong", "dataset": "%s", "gates": {"min_class_support": ' + "9" * 40 + "}}",
    '{"model": "strong", "dataset": "%s", "batch_size": -' + HUGE + "}",
])
async def test_huge_or_insane_numbers_are_400(door: Any, raw: str) -> None:
    status, body = await post_json(door, "/v1/vision/eval", raw % door.data)
    assert status == 400, body
    assert body["detail"]


@pytest.mark.parametrize("config", [
    {"epochs": int(HUGE)}, {"learning_rate": float("1e300")}, {"imgsz": int(HUGE)}, {"patience": -int(HUGE)},
])
async def test_huge_training_numbers_are_400_flat_or_nested(door: Any, config: dict[str, Any]) -> None:
    for body in ({"model": "strong", "dataset": str(door.data), "config": config},
                 {"model": "strong", "dataset": str(door.data), **config}):
        status, reply = await post_json(door, "/v1/vision/train", json.dumps(body))
        assert status == 400, reply


async def test_huge_form_numbers_are_400(door: Any) -> None:
    for field in ("imgsz", "batch_size"):
        for value in (HUGE, "9" * 5000, "1e400", "nan", "inf", "1_000", "0x140"):
            resp = await door.post("/v1/vision/eval", data={**eval_body(door), field: value})
            assert resp.status == 400, (field, value, await resp.text())
    resp = await door.post("/v1/vision/train", data={"model": "strong", "dataset": str(door.data),
                                                      "learning_rate": "9" * 5000})
    assert resp.status == 400


async def test_numbers_and_booleans_read_the_same_from_json_and_form(door: Any) -> None:
    for imgsz, mismatch in ((320.0, 1), ("320.0", "1"), (352, True), ("352", "true"), ("3.2e2", "0")):
        body = eval_body(door, imgsz=imgsz, allow_class_mismatch=mismatch)
        status, job = await post_json(door, "/v1/vision/eval", json.dumps(body))
        assert status == 202, job
        resp = await door.post("/v1/vision/eval", data={k: str(v).lower() for k, v in body.items()})
        assert resp.status == 202, await resp.text()
        form_job = await resp.json()
        assert job["request"]["imgsz"] == form_job["request"]["imgsz"] == int(float(imgsz))
        assert isinstance(form_job["request"]["imgsz"], int)
    for mismatch in ("yes", 2, "maybe", 0.5):
        status, _ = await post_json(door, "/v1/vision/eval", json.dumps(eval_body(door, allow_class_mismatch=mismatch)))
        assert status == 400
        resp = await door.post("/v1/vision/eval", data={**eval_body(door), "allow_class_mismatch": str(mismatch)})
        assert resp.status == 400
    for value in (320.5, "320.5"):
        status, _ = await post_json(door, "/v1/vision/eval", json.dumps(eval_body(door, imgsz=value)))
        assert status == 400


async def test_train_yaml_without_a_train_split_is_400(door: Any) -> None:
    raw = yaml.safe_load(Path(door.data).read_text())
    raw.pop("train")
    no_train = door.root / "data" / "no_train.yaml"
    no_train.write_text(yaml.safe_dump(raw))
    status, body = await post_json(door, "/v1/vision/train", json.dumps({"model": "strong", "dataset": str(no_train)}))
    assert status == 400 and "train" in body["detail"]
    raw["train"] = "images/missing"
    no_train.write_text(yaml.safe_dump(raw))
    status, body = await post_json(door, "/v1/vision/train", json.dumps({"model": "strong", "dataset": str(no_train)}))
    assert status == 400 and "images/missing" in body["detail"]
    raw["train"] = [3]
    no_train.write_text(yaml.safe_dump(raw))
    status, _ = await post_json(door, "/v1/vision/train", json.dumps({"model": "strong", "dataset": str(no_train)}))
    assert status == 400
    # The fixture YAML's train split (its val images) is fine.
    status, _ = await post_json(door, "/v1/vision/train", json.dumps({"model": "strong", "dataset": str(door.data)}))
    assert status == 202


@pytest.mark.parametrize("base,expected", [
    ("yolo99z.yaml", 400), ("yolov8n-seg.yaml", 400), ("yolov8-world.yaml", 400),
    ("no-such-model", 404), ("<root>/missing/v1.pt", 404),  # a missing model, as for `model`
])
async def test_unknown_base_model_is_refused_at_submit(door: Any, base: str, expected: int) -> None:
    base = base.replace("<root>", str(door.root))
    status, body = await post_json(door, "/v1/vision/train", json.dumps(
        {"model": "strong", "dataset": str(door.data), "base_model": base}))
    assert status == expected, body
    assert "base_model" in body["detail"] or "not found" in body["detail"]


@pytest.mark.parametrize("base", ["yolov8n.yaml", "yolo11s.yaml", "strong"])
async def test_known_base_model_is_accepted(door: Any, base: str) -> None:
    status, body = await post_json(door, "/v1/vision/train", json.dumps(
        {"model": "strong", "dataset": str(door.data), "base_model": base}))
    assert status == 202, body


async def test_total_counts_every_matching_job(door: Any) -> None:
    for _ in range(3):
        status, _ = await post_json(door, "/v1/vision/eval", json.dumps(eval_body(door)))
        assert status == 202
    status, _ = await post_json(door, "/v1/vision/train", json.dumps({"model": "strong", "dataset": str(door.data)}))
    assert status == 202
    listing = await (await door.get("/v1/vision/jobs", params={"limit": "1"})).json()
    assert len(listing["jobs"]) == 1 and listing["total"] == 4
    listing = await (await door.get("/v1/vision/jobs", params={"kind": "eval", "limit": "2"})).json()
    assert len(listing["jobs"]) == 2 and listing["total"] == 3
    listing = await (await door.get("/v1/vision/jobs", params={"status": "completed"})).json()
    assert listing == {"jobs": [], "total": 0}
    listing = await (await door.get("/v1/vision/train", params={"limit": "1"})).json()
    assert len(listing["jobs"]) == 1 and listing["total"] == 1


@pytest.mark.parametrize("path", [
    "/v1/vision/jobs?limit=1&limit=2", "/v1/vision/jobs?kind=eval&kind=train", "/v1/vision/train?status=queued&status=failed",
    "/v1/vision/eval/leaderboard?dataset=/a.yaml&dataset=/b.yaml", "/v1/vision/eval/leaderboard?limit=5&limit=5",
    "/v1/vision/eval/leaderboard/strong?limit=1&limit=2",
])
async def test_a_repeated_query_parameter_is_400(door: Any, path: str) -> None:
    resp = await door.get(path)
    assert resp.status == 400
    assert "given 2 times" in (await resp.json())["detail"]


@pytest.mark.parametrize("query", [
    {"weights": json.dumps(ZERO_WEIGHTS)}, {"weights": "{"}, {"weights": '{"bogus": 0.5}'}, {"weights": "[1]"},
    {"weights": '{"mAP50": ' + HUGE + "}"}, {"content": "old"}, {"limit": HUGE},
])
async def test_bad_leaderboard_queries_are_400(door: Any, query: dict[str, str]) -> None:
    resp = await door.get("/v1/vision/eval/leaderboard", params=query)
    assert resp.status == 400, await resp.text()


ODD_VALUES: list[Any] = [None, True, -1, 0, 2**63, 1e308, -1e308, "", "x" * 5000, "\x00", [], [1, [2]], {},
                         {"a": {"b": None}}, "~nobody-here/x", "/" + "a" * 5000, 320.5]


@pytest.mark.parametrize("path,fields", [
    ("/v1/vision/eval", ("model", "dataset", "imgsz", "batch_size", "weights", "allow_class_mismatch",
                         "auto_promote", "gates")),
    ("/v1/vision/eval/compare", ("model_a", "model_b", "imgsz", "weights", "bootstrap_resamples", "bootstrap_seed")),
    ("/v1/vision/train", ("model", "task", "config", "base_model", "epochs", "learning_rate", "eval_weights",
                          "auto_eval", "gates")),
])
async def test_no_request_body_produces_a_500(door: Any, path: str, fields: tuple[str, ...]) -> None:
    base = {"model": "strong", "model_a": "strong", "model_b": "strong", "dataset": str(door.data)}
    base = {k: v for k, v in base.items() if k in fields or k == "dataset"}
    for field in fields:
        for value in ODD_VALUES:
            body = {**base, field: value}
            status, reply = await post_json(door, path, json.dumps(body))
            assert status < 500, (field, value, reply)
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
            resp = await door.post(path, data=form)
            assert resp.status < 500, (field, value, await resp.text())
