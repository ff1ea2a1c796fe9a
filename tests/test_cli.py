"""The ``vision-eval`` client, run as the installed command against a real daemon (tests/daemon_fixtures.py).

One daemon for the module, with a bearer token: its own SQLite file, models
folder (``det/v1.pt`` = strong.pt, ``weak/v1.pt`` = weak.pt) and a 24-image
synthetic dataset; one warm CPU worker. Every CLI call is a subprocess of
``.venv/bin/vision-eval`` with ``VISION_EVAL_URL``/``VISION_EVAL_TOKEN`` set
(unless a test says otherwise). The renderer of comparison statistics is also
tested in-process on the documented shape, since a bootstrap run is slow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon_fixtures import STRONG_PT, WEAK_PT, free_port, make_dataset, place_model
from tests.inprocess import InProcessDaemon
from vision_eval.render import render_compare, render_eval

TOKEN = "cli-test-token"
IMGSZ = "320"  # the fixture checkpoints were trained at 192; the API's minimum is 320
needs_daemon = pytest.mark.ultralytics


def vision_eval(*args: str, url: str | None = None, token: str | None = TOKEN,
                timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI; the environment names the daemon unless url/token are None."""
    script = Path(sys.executable).parent / "vision-eval"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISION_EVAL_", "VISION_EVALD_")) and k != "COLUMNS"}
    if url:
        env["VISION_EVAL_URL"] = url
    if token:
        env["VISION_EVAL_TOKEN"] = token
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=timeout)


class Env:
    def __init__(self, daemon: InProcessDaemon, dataset: Path, other_names: Path) -> None:
        self.daemon = daemon
        self.dataset = dataset
        self.other_names = other_names  # the same images, different class names: evaluations fail

    def cli(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("url", self.daemon.url)
        return vision_eval(*args, **kw)

    def json(self, *args: str) -> Any:
        proc = self.cli("--json", *args)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli")
    dataset = make_dataset(root / "data", n_val=24, seed=0)
    data = yaml.safe_load(dataset.read_text())
    data["names"] = {0: "cat", 1: "dog", 2: "bird"}
    other = root / "data" / "other-names.yaml"
    other.write_text(yaml.safe_dump(data))
    daemon = InProcessDaemon(root, config={"server": {"auth_token": TOKEN}, "paths": {"allowed_roots": [str(root)]},
                                  "eval": {"imgsz": 320}})
    place_model(daemon.models_root, "det", STRONG_PT, "v1.pt")
    place_model(daemon.models_root, "weak", WEAK_PT, "v1.pt")
    try:
        daemon.start()
        yield Env(daemon, dataset, other)
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def evaluated(env: Env) -> subprocess.CompletedProcess[str]:
    """``vision-eval eval det DATASET``: waits, prints the summary (run once for the module)."""
    return env.cli("eval", "det", str(env.dataset), "--imgsz", IMGSZ)


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


# --------------------------------------------------------------------------- no daemon needed


def test_unreachable_daemon_exits_3_and_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = vision_eval("jobs", url=url)
    assert proc.returncode == 3, proc
    assert url in proc.stderr and "cannot reach" in proc.stderr
    proc = vision_eval("eval", "det", "/data/x.yaml", url=url)  # submitting fails the same way
    assert proc.returncode == 3 and url in proc.stderr


def test_usage_errors_exit_2_before_any_request() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a 3 would mean a request was made
    for args in (["eval", "det"], ["promote", "det", "two"], ["jobs", "--status", "lost"],
                 ["eval", "det", "/d.yaml", "--device", "cpu"], ["eval", "det", "/d.yaml", "--weights", "{bad"],
                 ["train", "m", "/d.yaml", "--eval-weights", "[1"]):
        proc = vision_eval(*args, url=url)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip(), args


def test_compare_renders_bootstrap_statistics_and_their_absence() -> None:
    metrics = {m: {"a": a, "b": b, "diff": a - b, "better": "a" if a > b else "b"}
               for m, a, b in (("mAP50", 0.8, 0.5), ("inference_ms", 40.0, 30.0), ("score", 0.6, 0.4))}
    metrics["inference_ms"]["better"] = "b"
    plain = {"model_a": "det", "model_b": "weak", "winner": "det", "score_diff": 0.2, "metrics": metrics,
             "dataset": "/d/data.yaml"}
    out = render_compare(plain)
    assert "A = det" in out and "winner: det by 0.2000" in out
    assert "CI" not in out and "no bootstrap statistics" in out
    # The statistics' differences are a - b, like the metrics' (one sign): the table prints them as they are.
    stats = {
        "n_images": 24, "n_resamples": 100, "seed": 0, "alpha": 0.05,
        "metrics": {"mAP50": {"a": 0.8, "b": 0.5, "diff": 0.3, "ci_low": 0.2, "ci_high": 0.4, "p_value": 0.0,
                              "significant": True, "n_valid": 100},
                    "accuracy_score": {"a": 0.55, "b": 0.35, "diff": 0.2, "ci_low": 0.1, "ci_high": 0.3,
                                       "p_value": 0.02, "significant": True, "n_valid": 100}},
        "per_class": {"red": {"class_index": 0, "support": 15, "a": 0.9, "b": 0.6, "diff": 0.3, "ci_low": -0.1,
                              "ci_high": 0.5, "p_value": 0.2, "significant": False, "n_valid": 100}},
        "flips": {"red": {"class_index": 0, "total": 15, "found_a": 13, "found_b": 11, "a_only": 3, "b_only": 1,
                          "examples_a_only": ["0016.png", "0021.png"], "examples_b_only": ["0005.png"]}},
    }
    out = render_compare({**plain, "statistics": stats})
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("mAP50 "))
    assert columns(row) == ["mAP50", "0.8000", "0.5000", "+0.3000", "A", "[+0.2000, +0.4000]", "<0.001", "yes"]
    assert columns(next(line for line in lines if line.startswith("accuracy_score")))[3:6] == [
        "+0.2000", "A", "[+0.1000, +0.3000]"]
    assert columns(next(line for line in lines if line.startswith("inference_ms")))[-3:] == ["-", "-", "-"]
    assert "100 resamples of 24 images" in out
    red = [columns(line) for line in lines if line.startswith("red")]
    assert red[0] == ["red", "15", "0.9000", "0.6000", "+0.3000", "[-0.1000, +0.5000]", "0.200", "no"]
    assert red[1] == ["red", "15", "13", "11", "3", "1", "0016.png, 0021.png", "0005.png"]
    flips_error = render_compare({**plain, "statistics": {**stats, "flips": {"error": "different ground truth"}}})
    assert "flip table unavailable: different ground truth" in flips_error


def test_eval_summary_shows_the_speed_spread() -> None:
    out = render_eval({"model_name": "m", "inference_ms": 20.51, "inference_ms_iqr": 1.84, "inference_batches": 2})
    line = next(x for x in out.splitlines() if x.startswith("inference_ms"))
    assert "20.5 ms" in line and "IQR 1.8 ms over 2 batches" in line
    assert "IQR" not in render_eval({"model_name": "m", "inference_ms": 20.5})  # older results: no spread


# --------------------------------------------------------------------------- against the daemon


@needs_daemon
def test_eval_waits_with_a_progress_bar_and_prints_a_summary(env: Env, evaluated) -> None:
    assert evaluated.returncode == 0, (evaluated.stdout, evaluated.stderr)
    out = evaluated.stdout
    assert re.search(r"^model\s+det\b", out, re.M)
    for metric in ("score", "mAP50", "mAP50_95", "f1", "small_object_recall", "inference_ms"):
        assert re.search(rf"^{metric}\s+\d+\.\d+", out, re.M), (metric, out)
    assert re.search(r"^red\s+\d\.\d{4}", out, re.M)  # the per-class table
    # stderr is a pipe, not a terminal: progress comes as plain lines, not a bar redrawn in place.
    assert "[#" not in evaluated.stderr and "[-" not in evaluated.stderr, evaluated.stderr
    assert re.search(r"^eval \w+ completed 100%$", evaluated.stderr, re.M), evaluated.stderr

    again = env.json("eval", "det", str(env.dataset), "--imgsz", IMGSZ)  # the same key: the cached result
    assert again["status"] == "completed" and again["kind"] == "eval"
    assert again["result"]["cached"] is True and again["result"]["model_name"] == "det"


@needs_daemon
def test_leaderboard_table_and_json(env: Env, evaluated) -> None:
    proc = env.cli("leaderboard", "--dataset", str(env.dataset))
    assert proc.returncode == 0, proc.stderr
    heading, header, *rows = proc.stdout.splitlines()
    assert heading.startswith(f"dataset {env.dataset}") and "task detection" in heading and "imgsz 320" in heading
    assert columns(header)[:4] == ["RANK", "MODEL", "VERSION", "SCORE"]
    assert header.index("MODEL") == rows[0].index("det")  # aligned
    board = env.json("leaderboard", "--limit", "5")
    assert board[0]["rank"] == 1 and board[0]["model_name"] == "det"
    assert columns(rows[0])[3] == f"{board[0]['score']:.4f}"
    unknown = env.cli("leaderboard", "--dataset", "/nowhere.yaml")
    assert unknown.stdout.strip() == f"no evaluations of that dataset; known datasets: {env.dataset}"
    assert unknown.stderr.strip() == f"(asked vision-evald at {env.daemon.url}: from $VISION_EVAL_URL)"


@needs_daemon
def test_history_table(env: Env, evaluated) -> None:
    proc = env.cli("history", "det")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()[:2]
    assert columns(header)[:3] == ["EVAL", "EVALUATED", "VERSION"]
    assert columns(row)[2] == "v1"
    missing = env.cli("history", "nobody")
    assert missing.returncode == 2 and "No evaluations found for: nobody" in missing.stderr


@needs_daemon
def test_jobs_table_filters_and_json(env: Env, evaluated) -> None:
    listing = env.json("jobs", "--kind", "eval", "--status", "completed")
    assert listing["total"] >= 1 and all(j["kind"] == "eval" and j["status"] == "completed" for j in listing["jobs"])
    proc = env.cli("jobs", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert columns(header) == ["JOB", "KIND", "STATUS", "PROGRESS", "CREATED", "FINISHED", "MODEL / ERROR"]
    job = listing["jobs"][0]
    row = next(r for r in rows if r.startswith(job["job_id"]))
    assert columns(row)[1:4] == ["eval", "completed", "100%"] and columns(row)[-1] == "det"
    assert env.json("jobs", "--status", "running", "--kind", "train") == {"jobs": [], "total": 0}


@needs_daemon
def test_models_table_detail_and_json(env: Env, evaluated) -> None:
    proc = env.cli("models")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert columns(header)[:3] == ["MODEL", "VERSIONS", "CURRENT"]
    by_name = {columns(r)[0]: columns(r) for r in rows}
    assert by_name["det"][1] == "v1" and by_name["weak"][1] == "v1"
    listing = env.json("models")
    models = {m["name"]: m for m in listing["models"]}
    assert listing["total"] == len(listing["models"])
    assert models["det"]["versions"] == 1 and models["det"]["version_numbers"] == [1]
    detail = env.cli("models", "det")
    assert detail.returncode == 0 and "versions:" in detail.stdout and "evaluations (newest first):" in detail.stdout
    assert env.json("models", "det")["name"] == "det"
    missing = env.cli("models", "ghost")
    assert missing.returncode == 2 and "model not found: ghost" in missing.stderr


@needs_daemon
def test_compare_prints_each_metric(env: Env, evaluated) -> None:
    proc = env.cli("compare", "det", "weak", str(env.dataset), "--imgsz", IMGSZ, "--resamples", "0")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert columns(next(line for line in lines if line.startswith("METRIC"))) == [
        "METRIC", "A", "B", "DIFF (A-B)", "BETTER"]
    for metric in ("mAP50", "mAP50_95", "inference_ms", "small_object_recall", "score"):
        assert any(line.startswith(metric + " ") for line in lines), metric
    assert "winner: det by" in proc.stdout


@needs_daemon
def test_failed_job_exits_1_with_its_error(env: Env) -> None:
    proc = env.cli("eval", "det", str(env.other_names), "--imgsz", IMGSZ)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "failed" in proc.stderr and "class names differ" in proc.stderr
    assert proc.stdout == ""


@needs_daemon
def test_no_wait_then_cancel(env: Env) -> None:
    with env.daemon.paused():  # no task starts: the cancel lands before any work, whatever the timing
        job = env.json("eval", "weak", str(env.dataset), "--imgsz", "352", "--no-wait")
        assert job["status"] == "queued"
        proc = env.cli("cancel", job["job_id"])
        assert proc.returncode == 0, proc.stderr
        assert job["job_id"] in proc.stdout

    def finished() -> str | None:
        status = next(j for j in env.json("jobs")["jobs"] if j["job_id"] == job["job_id"])["status"]
        return status if status in ("completed", "failed", "cancelled") else None

    assert env.daemon.wait_for(finished, 120, "the cancelled job to stop") == "cancelled"
    again = env.cli("cancel", job["job_id"])
    assert again.returncode == 2 and "already cancelled" in again.stderr


@needs_daemon
def test_cancel_unknown_job_exits_2_with_the_detail(env: Env) -> None:
    proc = env.cli("cancel", "no-such-job")
    assert proc.returncode == 2
    assert "job not found: no-such-job" in proc.stderr and "404" in proc.stderr


@needs_daemon
def test_token_from_flag_environment_or_config_file(env: Env) -> None:
    missing = env.cli("jobs", token=None)
    assert missing.returncode == 2 and "bearer token" in missing.stderr
    assert env.cli("--token", TOKEN, "jobs", token=None).returncode == 0
    assert env.cli("jobs", "--token", "wrong").returncode == 2  # after the command too
    # --config: the daemon's own file gives host, port and token.
    proc = vision_eval("--config", str(env.daemon.config_path), "--json", "jobs", url=None, token=None)
    assert proc.returncode == 0, proc.stderr
    assert "jobs" in json.loads(proc.stdout)


@needs_daemon
def test_promote_and_rollback(env: Env) -> None:
    place_model(env.daemon.models_root, "pr", STRONG_PT, "v1.pt")
    place_model(env.daemon.models_root, "pr", WEAK_PT, "v2.pt")
    nothing = env.cli("rollback", "pr")
    assert nothing.returncode == 2 and "nothing to roll back" in nothing.stderr
    first = env.cli("promote", "pr", "1", "--reason", "baseline")
    assert first.returncode == 0 and "pr: promoted" in first.stdout and "v1" in first.stdout, first
    second = env.json("promote", "pr", "2")
    assert second["decision"] == "promoted" and second["version"] == 2
    back = env.cli("rollback", "pr", "--reason", "v2 regressed")
    assert back.returncode == 0, back.stderr
    assert "rolled back" in back.stdout and "v1" in back.stdout and "v2 regressed" in back.stdout
    assert env.json("models", "pr")["current"]["version"] == 1
    same = env.cli("promote", "pr", "1")
    assert same.returncode == 2 and "already" in same.stderr and "409" in same.stderr


@needs_daemon
def test_train_with_auto_promote_waits_for_the_result(env: Env) -> None:
    tiny = make_dataset(env.daemon.root / "tiny", n_val=8, seed=4)  # one batch: the CLI is what is tested
    proc = env.cli("train", "fresh", str(tiny), "--epochs", "1", "--imgsz", IMGSZ, "--batch", "8",
                   "--base-model", "weak", "--auto-promote")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert re.search(r"^trained\s+fresh v1 \(1 epoch\)", proc.stdout, re.M)
    assert "evaluation:" in proc.stdout and "promotion: promoted: first version of fresh" in proc.stdout
    assert env.json("models", "fresh")["current"]["version"] == 1
