"""The HTTP contract of spec/vision-eval-api.md, against a started daemon.

One daemon per module: the real ``Service`` in the test process
(``tests.inprocess.InProcessDaemon``) with its own SQLite file, models folder
and state dir under tmp_path, a free port, the watcher off, and the worker
tasks (ultralytics on CPU) in a thread. Nothing is mocked. What needs the
``vision-evald`` process is checked where it runs: a cancelled running job's
worker is killed and replaced (tests/test_recovery.py), the HTTP process never
loads torch (tests/test_dashboard.py).

The models root holds ``my-detector/current.pt`` (a copy of strong.pt) and
``weak/v1.pt`` (a copy of weak.pt). ``[eval] imgsz`` is set to 320 in the
daemon's config, so requests that leave imgsz out (the spec's curl examples)
run at 320 rather than 640: the fixture checkpoints were trained at 192 and a
640 evaluation would only cost time.

``[paths] allowed_roots`` is the module's tmp dir, so the repository's
tests/fixtures/strong.pt is an outside path (403).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset, place_model
from tests.inprocess import InProcessDaemon
from tests.test_spec_examples import PYTHON_EVAL_EXAMPLE

pytestmark = pytest.mark.ultralytics

MAX_BODY = 64 * 1024
COMPARED = ("mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
            "small_object_recall", "medium_object_recall", "large_object_recall", "score")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")

# The spec's "Python Client Example", verbatim (the spec page lost its indentation; restored here).
# Only three values are substituted before it runs as a script: the URL, the dataset path and imgsz
# (640 -> 320). The model name is the spec's own: the fixture places my-detector/current.pt. Its poll
# sleep (5 s) becomes 0.5 s, which changes no request.
SPEC_PYTHON_CLIENT_EXAMPLE = PYTHON_EVAL_EXAMPLE  # the spec's Python example, as the page has it


class Env:
    def __init__(self, daemon: InProcessDaemon, root: Path, small: Path, fresh: Path) -> None:
        self.daemon = daemon
        self.root = root
        self.small = small  # 24 val images: quick evaluations
        self.fresh = fresh  # 8 val images only the cancel test evaluates
        self.url = daemon.url
        self.client = daemon.http  # the daemon helper's keep-alive client

    def job_ids(self) -> list[str]:
        r = self.client.get("/v1/vision/jobs", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return [j["job_id"] for j in r.json()["jobs"]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("api")
    small = make_dataset(root / "small", n_val=24, seed=0)
    fresh = make_dataset(root / "fresh", n_val=8, seed=3)
    daemon = InProcessDaemon(root, config={"paths": {"allowed_roots": [str(root)]}, "eval": {"imgsz": 320},
                                           "server": {"max_body_bytes": MAX_BODY}})
    place_model(daemon.models_root, "my-detector", STRONG_PT, "current.pt")
    place_model(daemon.models_root, "weak", WEAK_PT, "v1.pt")
    try:
        daemon.start()
        yield Env(daemon, root, small, fresh)
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def example(env: Env) -> dict[str, Any]:
    """Run the spec's Python client example as a script; return its stdout and the job it created."""
    before = set(env.job_ids())
    code = (SPEC_PYTHON_CLIENT_EXAMPLE
            .replace('"http://localhost:14345"', json.dumps(env.url))
            .replace('"/data/coco-subset.yaml"', json.dumps(str(env.small)))
            .replace('"imgsz": 640', '"imgsz": 320')
            .replace("time.sleep(5)", "time.sleep(0.5)"))
    script = env.root / "spec_client_example.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr, env.daemon.log_tail())
    new = [j for j in env.job_ids() if j not in before]
    assert len(new) == 1, new
    return {"stdout": proc.stdout, "job": env.daemon.job(new[0])}


def detail_of(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.headers, r.text)
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert body["detail"]
    return body["detail"]


# --------------------------------------------------------------------------- (a) the spec's client example


def test_spec_python_client_example_runs(example: dict[str, Any], env: Env) -> None:
    out = example["stdout"].splitlines()
    assert re.fullmatch(r"mAP50: \d\.\d{3}", out[0]), out
    assert re.fullmatch(r"Score: \d\.\d{4}", out[1]), out
    assert re.fullmatch(r"Small obj recall: \d\.\d{3}", out[2]), out
    assert float(out[0].split()[1]) > 0.5  # strong.pt is a good model at imgsz 320
    assert any(re.fullmatch(r"#1 my-detector: \d\.\d{4}", line) for line in out[3:]), out

    job = example["job"]
    assert job["status"] == "completed" and job["kind"] == "eval"
    result = job["result"]
    assert result["model_name"] == "my-detector"
    assert result["cached"] is False and isinstance(result["eval_id"], int)
    assert result["imgsz"] == 320
    spec_fields = ("mAP50", "mAP50_95", "precision", "recall", "f1", "per_class", "inference_ms",
                   "small_object_recall", "medium_object_recall", "large_object_recall", "score", "model_size_mb")
    missing = [f for f in spec_fields if f not in result]
    assert not missing, missing
    assert set(result["per_class"]) == {"red", "green", "blue"}
    # The same job polled through the spec's eval endpoint and the jobs endpoint.
    polled = env.client.get(f"/v1/vision/eval/{job['job_id']}").json()
    assert polled["status"] == "completed" and polled["result"]["eval_id"] == result["eval_id"]


# --------------------------------------------------------------------------- (b, c) curl examples and the cache


def _curl(args: list[str]) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), json.loads(body)


def test_spec_curl_json_and_form_examples_are_answered_from_the_cache(env: Env, example: dict[str, Any]) -> None:
    first = example["job"]["result"]
    url = f"{env.url}/v1/vision/eval"
    # The spec's JSON example (":11540, JSON"), as given but for the URL, model and dataset.
    code_json, sub_json = _curl([
        "-X", "POST", url, "-H", "Content-Type: application/json",
        "-d", json.dumps({"model": "my-detector", "dataset": str(env.small)}, indent=0),
    ])
    # The spec's form-data example (":14345, Form data").
    code_form, sub_form = _curl(["-X", "POST", url, "-F", "model=my-detector", "-F", f"dataset={env.small}"])
    # And form-urlencoded, which the spec's Python example sends.
    code_urlenc, sub_urlenc = _curl(["-X", "POST", url, "--data-urlencode", "model=my-detector",
                                     "--data-urlencode", f"dataset={env.small}"])
    for code, sub in ((code_json, sub_json), (code_form, sub_form), (code_urlenc, sub_urlenc)):
        assert 200 <= code < 300, (code, sub)
        assert {"job_id", "status", "created_at"} <= set(sub), sub  # the spec's response
        assert sub["status"] == "queued" and ISO_RE.match(sub["created_at"]), sub
    assert len({sub_json["job_id"], sub_form["job_id"], sub_urlenc["job_id"]}) == 3

    for sub in (sub_json, sub_form, sub_urlenc):
        job = env.daemon.wait_job(sub["job_id"], timeout=120)
        assert job["status"] == "completed", job
        # (c) Identical to the example's evaluation (same checkpoint, dataset, imgsz, batch): from the cache.
        assert job["result"]["cached"] is True
        assert job["result"]["eval_id"] == first["eval_id"]
        assert job["result"]["mAP50"] == first["mAP50"] and job["result"]["score"] == first["score"]
    # The cache never stored a second row: the model's history still has one evaluation.
    hist = env.client.get("/v1/vision/eval/leaderboard/my-detector").json()
    assert [h["eval_id"] for h in hist] == [first["eval_id"]]


def test_custom_weights_rescore_a_cached_result(env: Env, example: dict[str, Any]) -> None:
    first = example["job"]["result"]
    sub = env.daemon.submit_eval(model="my-detector", dataset=str(env.small), weights={"mAP50": 1.0})
    job = env.daemon.wait_job(sub["job_id"], timeout=120)
    assert job["status"] == "completed", job
    result = job["result"]
    # Other weights are another request: a result of its own over the same evaluation.
    assert result["cached"] is True and result["eval_id"] != first["eval_id"]
    assert result["mAP50"] == first["mAP50"] and result["weights"]["mAP50"] == 1.0
    assert result["score"] == pytest.approx(first["mAP50"])
    # History scores every row under one weighting (the defaults): both rows score the same there.
    hist = {h["eval_id"]: h for h in env.client.get("/v1/vision/eval/leaderboard/my-detector").json()}
    assert hist[result["eval_id"]]["score"] == hist[first["eval_id"]]["score"]
    assert hist[result["eval_id"]]["request_score"] == pytest.approx(first["mAP50"])


def test_same_checkpoint_under_two_names_has_one_cached_row_per_name(env: Env, example: dict[str, Any]) -> None:
    """A cache hit under another model name gets a row of its own, and each name keeps reusing its own row."""
    d = env.daemon
    first = example["job"]["result"]
    place_model(d.models_root, "twin", d.models_root / "my-detector" / "current.pt")  # the same bytes
    history = lambda name: [h["eval_id"] for h in env.client.get(f"/v1/vision/eval/leaderboard/{name}").json()]  # noqa: E731
    mine_before = history("my-detector")

    twin = d.wait_job(d.submit_eval(model="twin", dataset=str(env.small))["job_id"], timeout=120)["result"]
    assert twin["cached"] is True and twin["model_name"] == "twin"
    assert twin["eval_id"] != first["eval_id"] and twin["mAP50"] == first["mAP50"]
    mine = d.wait_job(d.submit_eval(model="my-detector", dataset=str(env.small))["job_id"], timeout=120)["result"]
    assert mine["cached"] is True and mine["model_name"] == "my-detector"
    assert mine["eval_id"] == first["eval_id"]
    twin_again = d.wait_job(d.submit_eval(model="twin", dataset=str(env.small))["job_id"], timeout=120)["result"]
    assert twin_again["eval_id"] == twin["eval_id"]

    assert history("my-detector") == mine_before
    assert history("twin") == [twin["eval_id"]]
    board = {row["model_name"] for row in env.client.get("/v1/vision/eval/leaderboard").json()}
    assert {"my-detector", "twin"} <= board


# --------------------------------------------------------------------------- (d) validation: 4xx JSON, never 5xx


def _eval_body(env: Env, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "my-detector", "dataset": str(env.small), "imgsz": 320}
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


_DROP = object()

# (id, expected status, how to build the request from env: returns httpx.Client.request kwargs)
INVALID_REQUESTS: list[tuple[str, int, Any]] = [
    ("imgsz-319", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, imgsz=319))),
    ("imgsz-2561", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, imgsz=2561))),
    ("imgsz-abc", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, imgsz="abc"))),
    ("imgsz-true", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, imgsz=True))),
    ("imgsz-fraction", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, imgsz=320.5))),
    ("batch-0", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, batch_size=0))),
    ("batch-257", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, batch_size=257))),
    ("weights-unknown-key", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights={"accuracy": 0.5}))),
    ("weights-negative", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights={"mAP50": -0.1}))),
    ("weights-over-1", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights={"mAP50": 0.7, "f1": 0.4}))),
    ("weights-not-number", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights={"mAP50": "high"}))),
    ("weights-list", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights=[0.5]))),
    ("weights-string", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights="mAP50=1"))),
    ("weights-number", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, weights=1))),
    ("missing-model", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model=_DROP))),
    ("empty-model", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model=""))),
    ("model-not-string", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model=7))),
    ("missing-dataset", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, dataset=_DROP))),
    ("unknown-model-name", 404,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model="no-such-model"))),
    ("malformed-model-name", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model="bad name!"))),
    ("model-relative-path", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model="models/x.pt"))),
    ("model-path-outside-roots", 403,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model=str(STRONG_PT)))),
    ("model-path-traversal", 403,
     lambda e: dict(method="POST", url="/v1/vision/eval",
                    json=_eval_body(e, model=str(e.root) + "/../../../etc/x.pt"))),
    ("model-path-missing", 404,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, model=str(e.root / "none.pt")))),
    ("dataset-relative", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, dataset="small/data.yaml"))),
    ("dataset-missing-file", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, dataset=str(e.root / "nope.yaml")))),
    ("dataset-bad-yaml", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, dataset=str(e.root / "bad.yaml")))),
    ("dataset-not-yaml", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, dataset=str(e.root / "daemon.toml")))),
    ("dataset-outside-roots", 403,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, dataset="/etc/data.yaml"))),
    ("non-json-body", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=b"{not json",
                    headers={"Content-Type": "application/json"})),
    ("empty-json-body", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=b"", headers={"Content-Type": "application/json"})),
    ("json-nested-too-deep", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=b"[" * 30000 + b"]" * 30000,
                    headers={"Content-Type": "application/json"})),
    ("json-weights-nan", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", headers={"Content-Type": "application/json"},
                    content=json.dumps(_eval_body(e, weights={"mAP50": float("nan")})).encode())),
    ("json-imgsz-infinite", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", headers={"Content-Type": "application/json"},
                    content=json.dumps(_eval_body(e, imgsz=float("inf"))).encode())),
    ("json-not-utf8", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=b'{"model": "\xff\xfe"}',
                    headers={"Content-Type": "application/json"})),
    ("json-array-body", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json=[_eval_body(e)])),
    ("json-string-body", 400, lambda e: dict(method="POST", url="/v1/vision/eval", json="my-detector")),
    ("wrong-content-type", 415,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=json.dumps(_eval_body(e)).encode(),
                    headers={"Content-Type": "text/plain"})),
    ("no-content-type", 415,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=json.dumps(_eval_body(e)).encode())),
    ("unknown-field", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, imgsize=320))),
    ("body-too-large", 413,
     lambda e: dict(method="POST", url="/v1/vision/eval", json=_eval_body(e, pad="x" * (MAX_BODY + 1024)))),
    ("form-imgsz-abc", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval",
                    data={"model": "my-detector", "dataset": str(e.small), "imgsz": "abc"})),
    ("form-weights-bad-json", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval",
                    data={"model": "my-detector", "dataset": str(e.small), "weights": "{mAP50: 1"})),
    ("form-weights-unknown-key", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval",
                    data={"model": "my-detector", "dataset": str(e.small), "weights": '{"accuracy": 0.1}'})),
    ("form-weights-nested-too-deep", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval",
                    data={"model": "my-detector", "dataset": str(e.small), "weights": "[" * 5000 + "]" * 5000})),
    ("form-duplicate-field", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", headers={"Content-Type": "application/x-www-form-urlencoded"},
                    content=f"model=my-detector&model=weak&dataset={e.small}".encode())),
    ("multipart-without-boundary", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", content=b"garbage",
                    headers={"Content-Type": "multipart/form-data"})),
    ("form-missing-model", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", data={"dataset": str(e.small)})),
    ("form-unknown-field", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval",
                    data={"model": "my-detector", "dataset": str(e.small), "epochs": "3"})),
    ("form-file-upload", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval", data={"dataset": str(e.small)},
                    files={"model": ("m.pt", b"not a checkpoint")})),
    ("compare-missing-model-b", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval/compare",
                    json={"model_a": "my-detector", "dataset": str(e.small)})),
    ("compare-unknown-model", 404,
     lambda e: dict(method="POST", url="/v1/vision/eval/compare",
                    json={"model_a": "my-detector", "model_b": "no-such-model", "dataset": str(e.small)})),
    ("compare-imgsz-319", 400,
     lambda e: dict(method="POST", url="/v1/vision/eval/compare",
                    json={"model_a": "my-detector", "model_b": "weak", "dataset": str(e.small), "imgsz": 319})),
    ("unknown-route", 404, lambda e: dict(method="GET", url="/v1/vision/nothing-here")),
    ("wrong-method", 405, lambda e: dict(method="PUT", url="/v1/vision/eval")),
    ("get-unknown-eval-job", 404, lambda e: dict(method="GET", url="/v1/vision/eval/0123456789ab")),
    ("get-unknown-job", 404, lambda e: dict(method="GET", url="/v1/vision/jobs/0123456789ab")),
    ("delete-unknown-job", 404, lambda e: dict(method="DELETE", url="/v1/vision/jobs/0123456789ab")),
    ("predictions-unknown-job", 404, lambda e: dict(method="GET", url="/v1/vision/eval/0123456789ab/predictions")),
    ("leaderboard-limit-0", 400, lambda e: dict(method="GET", url="/v1/vision/eval/leaderboard?limit=0")),
    ("leaderboard-limit-1001", 400, lambda e: dict(method="GET", url="/v1/vision/eval/leaderboard?limit=1001")),
    ("leaderboard-limit-abc", 400, lambda e: dict(method="GET", url="/v1/vision/eval/leaderboard?limit=abc")),
    ("leaderboard-unknown-param", 400, lambda e: dict(method="GET", url="/v1/vision/eval/leaderboard?sort=score")),
    ("history-unknown-model", 404, lambda e: dict(method="GET", url="/v1/vision/eval/leaderboard/no-such-model")),
    ("jobs-bad-status", 400, lambda e: dict(method="GET", url="/v1/vision/jobs?status=done")),
    ("jobs-bad-kind", 400, lambda e: dict(method="GET", url="/v1/vision/jobs?kind=predict")),
    ("jobs-limit-0", 400, lambda e: dict(method="GET", url="/v1/vision/jobs?limit=0")),
]


@pytest.fixture(scope="module")
def bad_yaml(env: Env) -> None:
    (env.root / "bad.yaml").write_text("path: [unclosed\nval: images/val\n  names: {0: a\n")


@pytest.mark.parametrize("case, status, build", INVALID_REQUESTS, ids=[c[0] for c in INVALID_REQUESTS])
def test_invalid_requests_get_a_4xx_json_detail(env: Env, bad_yaml: None, case: str, status: int, build: Any) -> None:
    before = env.job_ids()
    r = env.client.request(**build(env))
    assert r.status_code == status, (case, r.status_code, r.text)
    detail = detail_of(r)
    assert "Traceback" not in detail and "internal error" not in detail
    assert env.job_ids() == before, f"{case}: a rejected request created a job"


def test_validation_errors_say_what_is_wrong(env: Env, bad_yaml: None) -> None:
    r = env.client.post("/v1/vision/eval", json=_eval_body(env, imgsz=319))
    assert "imgsz" in detail_of(r)
    r = env.client.post("/v1/vision/eval", json=_eval_body(env, weights={"accuracy": 0.5}))
    assert "accuracy" in detail_of(r)
    r = env.client.post("/v1/vision/eval", json=_eval_body(env, model="no-such-model"))
    assert "no-such-model" in detail_of(r)
    r = env.client.post("/v1/vision/eval", json=_eval_body(env, unknown=1))
    assert "unknown" in detail_of(r)
    r = env.client.post("/v1/vision/eval", json=_eval_body(env, dataset=str(env.root / "bad.yaml")))
    assert "not valid YAML" in detail_of(r)
    r = env.client.post("/v1/vision/eval", json=_eval_body(env, model=str(STRONG_PT)))
    assert "outside the allowed" in detail_of(r)
    assert env.client.get("/healthz").json()["ok"] is True


# --------------------------------------------------------------------------- (e) compare and the leaderboard


def _check_compare_shape(out: dict[str, Any]) -> None:
    spec_keys = {"model_a", "model_b", "winner", "score_diff", "metrics"}
    assert spec_keys <= set(out), out.keys()
    # Our documented additions only (eval ids, dataset, paired-bootstrap statistics, error breakdowns).
    assert set(out) - spec_keys <= {"eval_id_a", "eval_id_b", "dataset", "statistics", "winner_significant", "errors"}, \
        set(out) - spec_keys
    assert set(out["metrics"]) == set(COMPARED), set(out["metrics"])
    for name, m in out["metrics"].items():
        assert set(m) == {"a", "b", "diff", "better"}, (name, m)
        if m["a"] is None or m["b"] is None:
            assert m["diff"] is None and m["better"] is None, (name, m)
            continue
        assert m["diff"] == pytest.approx(m["a"] - m["b"]), (name, m)
        if m["a"] == m["b"]:
            expected = "tie"
        elif name == "inference_ms":
            expected = "a" if m["a"] < m["b"] else "b"  # lower is better
        else:
            expected = "a" if m["a"] > m["b"] else "b"
        assert m["better"] == expected, (name, m)
    score = out["metrics"]["score"]
    assert out["score_diff"] == pytest.approx(abs(score["a"] - score["b"]))
    assert out["winner"] == {"a": out["model_a"], "b": out["model_b"], "tie": "tie"}[score["better"]]


def test_compare_two_models(env: Env, example: dict[str, Any]) -> None:
    r = env.client.post("/v1/vision/eval/compare",
                        json={"model_a": "my-detector", "model_b": "weak", "dataset": str(env.small)})
    assert r.status_code == 202, r.text
    sub = r.json()
    assert sub["status"] == "queued" and sub["kind"] == "compare"
    job = env.daemon.wait_job(sub["job_id"], timeout=240)
    assert job["status"] == "completed", job
    out = job["result"]
    _check_compare_shape(out)
    assert (out["model_a"], out["model_b"]) == ("my-detector", "weak")
    # a is the example's cached evaluation; b was evaluated now.
    assert out["metrics"]["score"]["a"] == example["job"]["result"]["score"]
    assert out["eval_id_a"] == example["job"]["result"]["eval_id"]
    assert out["eval_id_b"] != out["eval_id_a"]
    # The compare job is polled like an eval job too.
    assert env.client.get(f"/v1/vision/eval/{sub['job_id']}").json()["status"] == "completed"

    # Both evaluations are on the leaderboard, ranked from 1 by score.
    board = env.client.get("/v1/vision/eval/leaderboard").json()
    names = [row["model_name"] for row in board]
    assert {"my-detector", "weak"} <= set(names), names
    assert [row["rank"] for row in board] == list(range(1, len(board) + 1))
    scores = [row["score"] for row in board]
    assert scores == sorted(scores, reverse=True)
    spec_row = {"rank", "model_name", "score", "mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms",
                "small_object_recall", "dataset", "timestamp"}
    assert spec_row <= set(board[0]), set(board[0])
    by_name = {row["model_name"]: row for row in board}
    assert by_name["weak"]["eval_id"] == out["eval_id_b"]
    assert by_name["weak"]["score"] == out["metrics"]["score"]["b"]
    assert by_name["my-detector"]["dataset"] == str(env.small)

    # Filter by dataset (the path as given), and limit.
    filtered = env.client.get("/v1/vision/eval/leaderboard", params={"dataset": str(env.small), "limit": 10}).json()
    assert {"my-detector", "weak"} <= {row["model_name"] for row in filtered}
    assert all(row["dataset"] == str(env.small) for row in filtered)
    assert env.client.get("/v1/vision/eval/leaderboard", params={"dataset": str(env.root / "other.yaml")}).json() == []
    assert len(env.client.get("/v1/vision/eval/leaderboard", params={"limit": 1}).json()) == 1

    # History of one model: its evaluations, newest first.
    hist = env.client.get("/v1/vision/eval/leaderboard/weak").json()
    assert [h["eval_id"] for h in hist] == [out["eval_id_b"]]


def test_compare_a_model_with_itself_is_a_tie_form_data(env: Env, example: dict[str, Any]) -> None:
    r = env.client.post("/v1/vision/eval/compare", data={
        "model_a": "my-detector", "model_b": "my-detector", "dataset": str(env.small), "imgsz": "320",
        "bootstrap_resamples": "0",
    })
    assert r.status_code == 202, r.text
    job = env.daemon.wait_job(r.json()["job_id"], timeout=120)
    assert job["status"] == "completed", job
    out = job["result"]
    _check_compare_shape(out)
    assert out["winner"] == "tie"
    assert out["score_diff"] == 0
    for name, m in out["metrics"].items():
        assert m["better"] == ("tie" if m["a"] is not None else None), (name, m)


# --------------------------------------------------------------------------- (f) cancel


def test_cancel_queued_running_and_finished_jobs(env: Env, example: dict[str, Any]) -> None:
    d = env.daemon
    with d.paused():  # no task starts inside: each cancel lands before any work is done
        running = d.submit_eval(model="my-detector", dataset=str(env.fresh))  # not cached
        d.wait_job(running["job_id"], ("running",), timeout=60)
        queued = d.submit_eval(model="weak", dataset=str(env.fresh))
        assert d.job(queued["job_id"])["status"] == "queued"  # one worker, busy

        # A queued job is cancelled at once.
        r = env.client.delete(f"/v1/vision/jobs/{queued['job_id']}")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        job = d.job(queued["job_id"])
        assert job["status"] == "cancelled" and job["completed_at"] and job["result"] is None
        # Cancelling it again: it is finished now.
        r = env.client.delete(f"/v1/vision/jobs/{queued['job_id']}")
        assert r.status_code == 409 and "cancelled" in detail_of(r)

        # A running job is stopped.
        r = env.client.delete(f"/v1/vision/jobs/{running['job_id']}")
        assert r.status_code == 200, r.text
    job = d.wait_job(running["job_id"], timeout=120)
    assert job["status"] == "cancelled", job
    assert d.query("SELECT COUNT(*) FROM eval_results WHERE job_id = ?", (running["job_id"],))[0][0] == 0

    # A finished (completed) job cannot be cancelled.
    r = env.client.delete(f"/v1/vision/jobs/{example['job']['job_id']}")
    assert r.status_code == 409, r.text
    assert "completed" in detail_of(r)
    assert d.job(example["job"]["job_id"])["status"] == "completed"

    # The daemon goes on: the cancelled evaluation runs anew when asked again.
    again = d.submit_eval(model="my-detector", dataset=str(env.fresh))
    done = d.wait_job(again["job_id"], timeout=120)
    assert done["status"] == "completed" and done["result"]["cached"] is False, done


# --------------------------------------------------------------------------- (g) jobs list and predictions


def test_jobs_list_filters_and_newest_first(env: Env, example: dict[str, Any]) -> None:
    # Make sure there are jobs of several kinds and states (earlier tests may have been deselected).
    ids = [env.daemon.submit_eval(model="my-detector", dataset=str(env.small))["job_id"] for _ in range(2)]
    for job_id in ids:
        env.daemon.wait_job(job_id, timeout=120)
    cmp = env.client.post("/v1/vision/eval/compare", json={
        "model_a": "my-detector", "model_b": "my-detector", "dataset": str(env.small), "bootstrap_resamples": 0})
    env.daemon.wait_job(cmp.json()["job_id"], timeout=120)
    ids.append(cmp.json()["job_id"])

    body = env.client.get("/v1/vision/jobs").json()
    assert set(body) == {"jobs", "total"} and body["total"] >= len(body["jobs"])
    assert body["total"] == len(body["jobs"]) or len(body["jobs"]) == 50  # total counts every job, not the page
    all_ids = [j["job_id"] for j in body["jobs"]]
    assert all_ids[:3] == ids[::-1]  # newest first
    created = [j["created_at"] for j in body["jobs"]]
    assert created == sorted(created, reverse=True)
    assert example["job"]["job_id"] in env.job_ids()

    def listed(**params: Any) -> list[dict[str, Any]]:
        r = env.client.get("/v1/vision/jobs", params=params)
        assert r.status_code == 200, r.text
        return r.json()["jobs"]

    evals = listed(kind="eval", limit=1000)
    assert evals and all(j["kind"] == "eval" for j in evals) and ids[2] not in [j["job_id"] for j in evals]
    compares = listed(kind="compare", limit=1000)
    assert compares and all(j["kind"] == "compare" for j in compares) and compares[0]["job_id"] == ids[2]
    completed = listed(status="completed", limit=1000)
    assert all(j["status"] == "completed" for j in completed) and set(ids) <= {j["job_id"] for j in completed}
    both = listed(status="completed", kind="compare", limit=1000)
    assert both and all(j["status"] == "completed" and j["kind"] == "compare" for j in both)
    for j in listed(status="cancelled", limit=1000):
        assert j["status"] == "cancelled"
    assert [j["job_id"] for j in listed(limit=1)] == [ids[2]]
    assert listed(status="queued", kind="train") == []


def test_predictions_of_a_completed_eval(env: Env, example: dict[str, Any]) -> None:
    job_id = example["job"]["job_id"]
    r = env.client.get(f"/v1/vision/eval/{job_id}/predictions")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    preds = r.json()
    assert isinstance(preds, list) and preds
    val_dir = env.small.parent / "images" / "val"
    for p in preds[:200]:
        assert {"file_name", "category_id", "bbox", "score"} <= set(p), p
        assert not p["file_name"].startswith("/") and (val_dir / p["file_name"]).is_file(), p
        assert p["category_id"] in (0, 1, 2)
        assert len(p["bbox"]) == 4 and p["bbox"][2] > 0 and p["bbox"][3] > 0
        assert 0 <= p["score"] <= 1

    # A compare job has no predictions of its own; a cancelled eval has none. Both made here, held so
    # that no work runs, and cancelled: nothing depends on what other tests left behind.
    d = env.daemon
    with d.paused():
        compare = env.client.post("/v1/vision/eval/compare", json={
            "model_a": "my-detector", "model_b": "weak", "dataset": str(env.fresh)}).json()
        cancelled = d.submit_eval(model="weak", dataset=str(env.fresh))
        for job in (compare, cancelled):
            assert env.client.delete(f"/v1/vision/jobs/{job['job_id']}").status_code == 200
    for job in (compare, cancelled):
        assert d.wait_job(job["job_id"], timeout=120)["status"] == "cancelled"
    r = env.client.get(f"/v1/vision/eval/{compare['job_id']}/predictions")
    assert r.status_code == 404 and "compare job" in detail_of(r), r.text
    r = env.client.get(f"/v1/vision/eval/{cancelled['job_id']}/predictions")
    assert r.status_code == 409 and "cancelled" in detail_of(r), r.text


def test_healthz_and_no_server_errors_in_the_log(env: Env) -> None:
    h = env.client.get("/healthz")
    assert h.status_code == 200, h.text
    body = h.json()
    assert body["ok"] is True and body["database"] == "ok"
    assert body["worker_info"]["device_kind"] == "cpu"
    log = env.daemon.log()
    assert '" 500 ' not in log and "Traceback" not in log, env.daemon.log_tail(100)


# --------------------------------------------------------------------------- (g) answers match /openapi.json


def test_answers_conform_to_the_openapi_result_schemas(env: Env, example: dict[str, Any]) -> None:
    """The eval and compare results, leaderboard and history entries, as the daemon really sends them,
    validated field by field against the document's schemas (tests/openapi_check.py)."""
    from tests.openapi_check import check

    job = env.client.get(f"/v1/vision/eval/{example['job']['job_id']}").json()
    check(job, "Job")
    check(job["result"], "EvalResult")
    broken = {**job["result"], "inference_ms": "12 ms"}
    with pytest.raises(AssertionError, match="inference_ms"):  # the check bites
        check(broken, "EvalResult")
    r = env.client.post("/v1/vision/eval/compare", json={
        "model_a": "my-detector", "model_b": "weak", "dataset": str(env.small), "imgsz": 320,
        "bootstrap_resamples": 50})
    assert r.status_code == 202, r.text
    check(r.json(), "Job")
    done = env.daemon.wait_job(r.json()["job_id"])
    assert done["status"] == "completed", done
    check(done, "Job")
    check(done["result"], "CompareResult")
    board = env.client.get("/v1/vision/eval/leaderboard").json()
    assert board
    for entry in board:
        check(entry, "LeaderboardEntry")
    for entry in env.client.get("/v1/vision/eval/leaderboard/my-detector").json():
        check(entry, "HistoryEntry")
    listing = env.client.get("/v1/vision/models").json()
    check(listing, "ModelList")  # LlamaFarm's runtime shape: {"models": [...], "total"}
    assert listing["total"] == len(listing["models"])
    det = {m["name"]: m for m in listing["models"]}["my-detector"]
    folder = env.daemon.models_root / "my-detector"
    assert det["has_current"] is True and det["versions"] == len(det["version_numbers"]) == 0
    assert det["size_mb"] == round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 2)
    check(env.client.get("/health").json(), "Health")
