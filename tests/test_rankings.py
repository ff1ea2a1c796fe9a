"""Every stored number means one thing: the leaderboard and history under one weighting, results as
asked (cache hits under the requested model, dataset path and options, after the same checks),
effective imgsz/batch, current dataset content.

In-process: the real Service and HTTP app on SQLite in tmp_path; evaluations are real ultralytics
runs of the committed checkpoints on tiny synthetic data, executed by ``ThreadExecutor`` (the
worker's own task functions, in a thread of this process). Scores are checked against a
straightforward recomputation of the formula of docs/metrics.md, written out here, not against our own code.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.app import make_app
from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset, place_model
from tests.inprocess import ThreadExecutor, running_service, wait_job

DEFAULT = {"mAP50_95": 0.35, "mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10}
SPEED_ONLY = {"speed": 1.0}
SPEED_APPLIED = {**{k: 0.0 for k in DEFAULT}, "speed": 1.0}  # the defaults left fill nothing


def expected_score(row: dict[str, Any], weights: dict[str, float]) -> float | None:
    """docs/metrics.md: sum(w_k m_k) over non-null terms, renormalised; speed = clamp((500 - ms) / 450, 0, 1)."""
    num = den = 0.0
    for key, w in weights.items():
        if key == "speed":
            ms = row["inference_ms"]
            value = None if ms is None else min(1.0, max(0.0, (500.0 - ms) / 450.0))
        else:
            value = row[key]
        if w > 0 and value is not None:
            num += w * value
            den += w
    return num / den if den > 0 else None


@pytest.fixture
async def daemon(tmp_path: Path, aiohttp_client: Any, ultralytics_env: Path):
    data = make_dataset(tmp_path / "data", n_val=8, seed=0)
    place_model(tmp_path / "models", "strong", STRONG_PT)
    place_model(tmp_path / "models", "weak", WEAK_PT)
    place_model(tmp_path / "models", "twin", STRONG_PT)  # the same bytes under another name
    async with running_service(tmp_path, ThreadExecutor(), paths={"allowed_roots": [str(tmp_path)]},
                               eval={"imgsz": 320, "batch": 8}) as svc:
        await asyncio.wait_for(svc.workers_ready.wait(), 300)
        client = await aiohttp_client(make_app(svc.facade))
        client.data, client.root = data, tmp_path  # type: ignore[attr-defined]
        yield client


async def evaluate(client: Any, **body: Any) -> dict[str, Any]:
    """Submit an eval and return the finished job."""
    body.setdefault("dataset", str(client.data))
    resp = await client.post("/v1/vision/eval", json=body)
    assert resp.status == 202, await resp.text()
    return await wait_job(client, (await resp.json())["job_id"])


async def completed(client: Any, **body: Any) -> dict[str, Any]:
    job = await evaluate(client, **body)
    assert job["status"] == "completed", job
    return job["result"]  # type: ignore[no-any-return]


async def get(client: Any, path: str, **params: Any) -> Any:
    resp = await client.get(path, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def copy_yaml(source: Path, target: Path, **changes: Any) -> Path:
    """The same images and labels (absolute ``path``) under another YAML path, optionally changed."""
    raw = yaml.safe_load(source.read_text())
    raw.update(changes)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(raw))
    return target


async def test_an_extreme_custom_weighting_never_ranks_the_default_leaderboard(daemon: Any) -> None:
    weak_speed = await completed(daemon, model="weak", weights=SPEED_ONLY)
    strong = await completed(daemon, model="strong")
    assert strong["score"] == pytest.approx(expected_score(strong, DEFAULT))
    weak_default = await completed(daemon, model="weak")  # a cache hit: a row of its own
    # On an idle machine weak's speed-only score (about 1) beats strong's default score, which ranked weak
    # first before; timings vary with load, so the checks below do not depend on it: every leaderboard row
    # must carry its default-weights score, whatever its first request asked.
    assert weak_speed["score"] == pytest.approx(expected_score(weak_speed, SPEED_ONLY))
    assert weak_default["cached"] is True and weak_default["eval_id"] != weak_speed["eval_id"]
    assert weak_default["score"] == pytest.approx(expected_score(weak_speed, DEFAULT))

    board = await get(daemon, "/v1/vision/eval/leaderboard")
    assert [r["model_name"] for r in board] == ["strong", "weak"]
    for row in board:
        assert row["weights"] == DEFAULT
        assert row["score"] == pytest.approx(expected_score(row, DEFAULT))
        assert row["current_content"] is True
    assert board[0]["score"] > board[1]["score"]

    ranked = await get(daemon, "/v1/vision/eval/leaderboard", weights=json.dumps(SPEED_ONLY))
    assert {r["model_name"] for r in ranked} == {"strong", "weak"}
    for row in ranked:
        assert row["weights"] == SPEED_APPLIED
        assert row["score"] == pytest.approx(expected_score(row, SPEED_ONLY))
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)

    # Partial weights are completed like a request's: mAP50 0.5 kept, the defaults fill the rest.
    half = await get(daemon, "/v1/vision/eval/leaderboard", weights=json.dumps({"mAP50": 0.5}))
    assert half[0]["weights"]["mAP50"] == 0.5 and sum(half[0]["weights"].values()) == pytest.approx(1.0)

    history = await get(daemon, "/v1/vision/eval/leaderboard/weak")
    assert [h["eval_id"] for h in history] == [weak_default["eval_id"], weak_speed["eval_id"]]
    for h in history:  # one rule: the default weights, whatever each request asked
        assert h["weights"] == DEFAULT
        assert h["score"] == pytest.approx(expected_score(h, DEFAULT))
    assert history[1]["request_weights"] == SPEED_APPLIED
    assert history[1]["request_score"] == pytest.approx(weak_speed["score"])
    custom = await get(daemon, "/v1/vision/eval/leaderboard/weak", weights=json.dumps(SPEED_ONLY))
    assert all(h["score"] == pytest.approx(expected_score(h, SPEED_ONLY)) for h in custom)

    # Asking the same again answers with the same row; nothing new is stored.
    again = await completed(daemon, model="weak", weights=SPEED_ONLY)
    assert again["eval_id"] == weak_speed["eval_id"] and again["cached"] is True
    assert len(await get(daemon, "/v1/vision/eval/leaderboard/weak")) == 2


async def test_the_same_images_under_a_second_path_get_their_own_row(daemon: Any) -> None:
    second = copy_yaml(daemon.data, daemon.root / "elsewhere" / "second.yaml")
    first_job = await evaluate(daemon, model="strong")
    second_job = await evaluate(daemon, model="strong", dataset=str(second))
    first, again = first_job["result"], second_job["result"]
    assert again["cached"] is True and again["dataset"] == str(second.resolve())
    assert again["eval_id"] != first["eval_id"]
    assert again["dataset_fingerprint"] == first["dataset_fingerprint"]
    assert again["mAP50_95"] == first["mAP50_95"]

    on_second = await get(daemon, "/v1/vision/eval/leaderboard", dataset=str(second))
    assert [(r["model_name"], r["dataset"], r["eval_id"]) for r in on_second] == [
        ("strong", str(second.resolve()), again["eval_id"])]
    on_first = await get(daemon, "/v1/vision/eval/leaderboard", dataset=str(daemon.data))
    assert [(r["dataset"], r["eval_id"]) for r in on_first] == [(str(daemon.data.resolve()), first["eval_id"])]
    everywhere = await get(daemon, "/v1/vision/eval/leaderboard")
    assert sorted(r["dataset"] for r in everywhere) == sorted([str(second.resolve()), str(daemon.data.resolve())])
    history = await get(daemon, "/v1/vision/eval/leaderboard/strong")
    assert {h["dataset"] for h in history} == {str(second.resolve()), str(daemon.data.resolve())}
    # The artifacts are shared: the second job's predictions are the first's.
    a = await daemon.get(f"/v1/vision/eval/{first_job['job_id']}/predictions")
    b = await daemon.get(f"/v1/vision/eval/{second_job['job_id']}/predictions")
    assert a.status == b.status == 200 and await a.read() == await b.read()

    # Another model name for the same bytes is its own result too.
    twin = await completed(daemon, model="twin")
    assert twin["cached"] is True and twin["model_name"] == "twin" and twin["dataset"] == str(daemon.data.resolve())
    assert {r["model_name"] for r in await get(daemon, "/v1/vision/eval/leaderboard", dataset=str(daemon.data))} == {
        "strong", "twin"}


async def test_a_cached_evaluation_does_not_bypass_the_class_name_check(daemon: Any) -> None:
    renamed = copy_yaml(daemon.data, daemon.root / "renamed" / "renamed.yaml", names={0: "cat", 1: "dog", 2: "cow"})
    fresh_refusal = await evaluate(daemon, model="strong", dataset=str(renamed))
    assert fresh_refusal["status"] == "failed" and "class names" in fresh_refusal["error"]
    allowed = await completed(daemon, model="strong", dataset=str(renamed), allow_class_mismatch=True)
    assert allowed["cached"] is False and allowed["warnings"]
    cached_refusal = await evaluate(daemon, model="strong", dataset=str(renamed))
    assert cached_refusal["status"] == "failed"
    assert cached_refusal["error"] == fresh_refusal["error"]  # the same outcome, word for word
    # Another path to the same renamed content: refused too, and allowed under its own path.
    other = copy_yaml(renamed, daemon.root / "renamed2" / "other.yaml")
    refused = await evaluate(daemon, model="strong", dataset=str(other))
    assert refused["status"] == "failed" and "class names" in refused["error"] and str(other.resolve()) in refused["error"]
    ok = await completed(daemon, model="strong", dataset=str(other), allow_class_mismatch=True)
    assert ok["cached"] is True and ok["dataset"] == str(other.resolve())
    assert ok["warnings"] and str(other.resolve()) in ok["warnings"][0]
    # A matching dataset needs no permission, cached or not.
    await completed(daemon, model="strong")
    assert (await completed(daemon, model="twin"))["warnings"] == []


async def test_imgsz_and_batch_are_recorded_as_what_ran(daemon: Any) -> None:
    ran = await completed(daemon, model="strong", imgsz=330, batch_size=16)  # 8 images: a batch of 8
    assert (ran["imgsz"], ran["imgsz_requested"]) == (352, 330)
    assert (ran["batch"], ran["batch_requested"]) == (8, 16)
    same = await completed(daemon, model="strong", imgsz=352, batch_size=8)
    assert same["cached"] is True and (same["imgsz"], same["batch"]) == (352, 8)
    assert "imgsz_requested" not in same and "batch_requested" not in same
    assert same["mAP50_95"] == ran["mAP50_95"]
    history = await get(daemon, "/v1/vision/eval/leaderboard/strong")
    assert [(h["imgsz"], h.get("imgsz_requested")) for h in history] == [(352, None), (352, 330)]  # newest first


def test_effective_imgsz_is_ultralytics_check_imgsz(ultralytics_env: Path) -> None:
    from ultralytics.utils.checks import check_imgsz

    from evaluation.settings import effective_imgsz

    for size in [*range(1, 700), 2559, 2560, 2561]:
        assert effective_imgsz(size) == check_imgsz(size, max_dim=1), size


async def test_the_leaderboard_ranks_current_dataset_content_by_default(daemon: Any) -> None:
    old = await completed(daemon, model="strong")
    label = min((daemon.data.parent / "labels" / "val").glob("*.txt"))
    label.write_text(label.read_text() + "0 0.5 0.5 0.2 0.2\n")  # the dataset's content changes
    new = await completed(daemon, model="weak")
    assert new["dataset_fingerprint"] != old["dataset_fingerprint"]
    current = await get(daemon, "/v1/vision/eval/leaderboard", dataset=str(daemon.data))
    assert [(r["model_name"], r["current_content"]) for r in current] == [("weak", True)]
    everything = await get(daemon, "/v1/vision/eval/leaderboard", dataset=str(daemon.data), content="all")
    assert sorted((r["model_name"], r["current_content"]) for r in everything) == [("strong", False), ("weak", True)]
    rescored = await get(daemon, "/v1/vision/eval/leaderboard", weights=json.dumps(SPEED_ONLY), content="all")
    assert sorted((r["model_name"], r["current_content"]) for r in rescored) == [("strong", False), ("weak", True)]
    history = await get(daemon, "/v1/vision/eval/leaderboard/strong")
    assert [h["current_content"] for h in history] == [False]


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


async def test_concurrent_mix_of_models_and_sizes(daemon: Any) -> None:
    models, sizes = ("strong", "weak", "twin"), (320, 330, 384)
    bodies = [{"model": models[i % 3], "imgsz": sizes[(i // 3) % 3],
               **({"weights": {"mAP50": 0.5}} if i % 4 == 0 else {})} for i in range(20)]
    replies = await asyncio.gather(*(daemon.post("/v1/vision/eval", json={**b, "dataset": str(daemon.data)})
                                     for b in bodies))
    assert [r.status for r in replies] == [202] * 20
    ids = [(await r.json())["job_id"] for r in replies]
    jobs = [await wait_job(daemon, job_id) for job_id in ids]
    assert [j["status"] for j in jobs] == ["completed"] * 20, [j["error"] for j in jobs]

    listing = await get(daemon, "/v1/vision/jobs", limit=5)
    assert listing["total"] == 20 and len(listing["jobs"]) == 5
    metrics = parse_metrics(await (await daemon.get("/metrics")).text())
    by_state = {labels.get("state", labels.get("status")): v for name, labels, v in metrics
                if name == "vision_evald_jobs" and labels.get("kind") == "eval"}
    assert by_state.get("completed") == 20 and not by_state.get("queued") and not by_state.get("running")

    # What ran: each requested size at its stride-rounded size; the same bytes share their metrics.
    for body, job in zip(bodies, jobs):
        result = job["result"]
        assert result["imgsz"] == {320: 320, 330: 352, 384: 384}[body["imgsz"]]
        assert result.get("imgsz_requested") == (330 if body["imgsz"] == 330 else None)
        assert result["model_name"] == body["model"]
    metrics_of = {(j["result"]["checkpoint_sha256"], j["result"]["imgsz"]): j["result"]["mAP50_95"] for j in jobs}
    for job in jobs:
        assert job["result"]["mAP50_95"] == metrics_of[(job["result"]["checkpoint_sha256"], job["result"]["imgsz"])]
    # One result per distinct request: identical requests answered with the same row.
    by_request: dict[str, set[int]] = {}
    for body, job in zip(bodies, jobs):
        by_request.setdefault(json.dumps(body, sort_keys=True), set()).add(job["result"]["eval_id"])
    assert all(len(eval_ids) == 1 for eval_ids in by_request.values())

    histories = {m: await get(daemon, f"/v1/vision/eval/leaderboard/{m}") for m in models}
    for model in models:
        asked = {json.dumps(b, sort_keys=True) for b in bodies if b["model"] == model}
        assert len(histories[model]) == len(asked)
        for h in histories[model]:
            assert h["weights"] == DEFAULT and h["score"] == pytest.approx(expected_score(h, DEFAULT))
    # Like with like: one setting group per image size that ran, each ranking every model from 1, each
    # model's row its best at that size; no group mixes sizes.
    board = await get(daemon, "/v1/vision/eval/leaderboard")
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in board:
        assert row["group"]["imgsz"] == row["imgsz"]
        groups.setdefault(row["imgsz"], []).append(row)
    assert sorted(groups) == [320, 352, 384]
    for size, rows in groups.items():
        assert sorted(r["model_name"] for r in rows) == sorted(models)
        assert [r["rank"] for r in rows] == [1, 2, 3]
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
        for row in rows:
            best = max(h["score"] for h in histories[row["model_name"]] if h["imgsz"] == size)
            assert row["score"] == pytest.approx(best)
