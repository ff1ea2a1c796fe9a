"""The client library (vision_eval/): the async client against the real app served in-process
(tests/inprocess.py: the real Service and HTTP server; worker tasks in a thread), its answers checked
against the sync client and the store; and the progress display on terminals and pipes.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from store import job_table as jobq
from store import results
from tests.daemon_fixtures import free_port, place_model
from tests.inprocess import ThreadExecutor, running_service, url
from tests.test_metrics import default_score, parse_prometheus, value_of
from vision_eval import cli
from vision_eval.aclient import AsyncClient
from vision_eval.api import ApiError, Unreachable
from vision_eval.client import Client
from vision_eval.progress import ProgressBar

IMGSZ = 320  # the API's minimum; the fixture checkpoints were trained at 192


# --------------------------------------------------------------------------- progress display


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (as stderr on a console does)."""

    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()  # isatty() is False, as for a pipe or a log file
    bar = ProgressBar("eval j1 queued   ", stream)
    for fraction in (0.0, 0.01, 0.05, 0.12, 0.13, 0.5, 0.5):
        bar(fraction)
    bar.label = "eval j1 completed"
    bar(1.0)
    bar.close()
    assert "\r" not in stream.getvalue()
    # A line when progress passes another tenth or the label changes; repeats within a tenth are dropped.
    assert stream.getvalue().splitlines() == [
        "eval j1 queued 0%", "eval j1 queued 12%", "eval j1 queued 50%", "eval j1 completed 100%"]


def test_progress_is_one_redrawn_bar_on_a_terminal() -> None:
    stream = _Terminal()
    bar = ProgressBar("eval j1", stream, width=10)
    bar(0.0)
    bar(0.5)
    bar.close()
    assert stream.getvalue() == "\reval j1 [----------]   0.0%\reval j1 [#####-----]  50.0%\n"


# --------------------------------------------------------------------------- no daemon, no torch


def _loaded_packages(code: str) -> set[str]:
    """The top-level packages of this project that ``code`` leaves imported, in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(sorted({m.split('.')[0] for m in sys.modules} & " \
                   "{'daemon', 'handlers', 'store', 'evaluation', 'vision_eval'}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.replace("'", '"')))


def test_the_client_library_stands_alone_and_the_daemon_never_imports_it() -> None:
    assert _loaded_packages("import vision_eval.client, vision_eval.aclient") == {"vision_eval"}
    daemon_side = _loaded_packages("import daemon.main, daemon.app.service, daemon.app.service_facade, handlers.app\n"
                                   "from vocab.config import Config\nfrom daemon.app.service import Service\n"
                                   "Service(Config())")
    assert "vision_eval" not in daemon_side and {"daemon", "handlers"} <= daemon_side


async def test_unreachable_and_http_errors_map_to_the_two_exceptions(tmp_path: Path) -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(Unreachable):
            await client.jobs()
    async with running_service(tmp_path, server={"auth_token": "s3cret"}) as svc:
        async with AsyncClient(url(svc)) as anonymous:
            with pytest.raises(ApiError) as denied:
                await anonymous.jobs()
        assert denied.value.status == 401
        async with AsyncClient(url(svc), "s3cret") as client:
            assert (await client.jobs())["jobs"] == []
            with pytest.raises(ApiError) as missing:
                await client.history("nobody")
            assert missing.value.status == 404 and missing.value.detail == "No evaluations found for: nobody"
            with pytest.raises(ApiError) as unknown:
                await client.cancel("no-such-job")
            assert unknown.value.status == 404 and "no-such-job" in unknown.value.detail


async def test_a_shared_session_is_left_open_for_its_owner(tmp_path: Path) -> None:
    async with running_service(tmp_path) as svc, aiohttp.ClientSession() as session:
        async with AsyncClient(url(svc), session=session) as client:
            assert await client.models() == {"models": [], "total": 0}
        assert not session.closed  # the caller's session: the client must not close it
        async with AsyncClient(url(svc), session=session) as client:
            assert await client.models() == {"models": [], "total": 0}


async def test_queued_train_job_is_submitted_listed_and_cancelled(tmp_path: Path, synth_dataset: Path) -> None:
    """The executor is never released: the job stays queued, so what we see does not depend on timing."""
    async with running_service(tmp_path) as svc, AsyncClient(url(svc)) as client:
        job = await client.train("det", str(synth_dataset), config={"epochs": 1, "imgsz": IMGSZ})
        assert job["kind"] == "train" and job["status"] == "queued"
        listed = await client.jobs(kind="train", status="queued")
        assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
        cancelled = await client.cancel(job["job_id"])
        assert cancelled["status"] == "cancelled"
        assert (await client.wait(job["job_id"], interval=0.01))["status"] == "cancelled"
        stored = await svc.db.read(lambda c: jobq.get(c, job["job_id"]))
        assert stored is not None and (stored.status, stored.kind) == ("cancelled", "train")


# --------------------------------------------------------------------------- real evaluations


async def test_async_client_evaluates_compares_and_promotes(tmp_path: Path, ultralytics_env: Path,
                                                            strong_pt: Path, weak_pt: Path,
                                                            synth_dataset: Path) -> None:
    dataset = str(synth_dataset)
    place_model(tmp_path / "models", "det", strong_pt, "v1.pt")
    place_model(tmp_path / "models", "det", weak_pt, "v2.pt")
    place_model(tmp_path / "models", "weak", weak_pt, "v1.pt")
    async with running_service(tmp_path, executor=ThreadExecutor()) as svc, AsyncClient(url(svc)) as client:
        sync = Client(url(svc))
        job = await client.eval("det", dataset, imgsz=IMGSZ)
        seen: list[str] = []

        async def note(j: dict[str, Any]) -> None:
            seen.append(j["status"])

        done = await client.wait(job["job_id"], on_update=note, interval=0.05)
        assert done["status"] == "completed", done
        assert seen[-1] == "completed" and set(seen) <= {"queued", "running", "completed"}
        result = done["result"]
        # The same job through the sync client, and the stored row: one truth.
        assert await asyncio.to_thread(sync.job, job["job_id"]) == done
        row = await svc.db.read(lambda c: results.get(c, result["eval_id"]))
        assert row is not None and (row["score"], row["mAP50_95"]) == pytest.approx((result["score"],
                                                                                   result["mAP50_95"]))

        board = await client.leaderboard(dataset=dataset)
        assert board == await asyncio.to_thread(sync.leaderboard, dataset=dataset)
        assert [(r["model_name"], r["score"]) for r in board] == [("det", result["score"])]
        history = await client.history("det")
        assert [h["eval_id"] for h in history] == [result["eval_id"]]
        predictions = await client.predictions(job["job_id"])
        stored = json.loads((await svc.facade.predictions_path(job["job_id"])).read_text())
        assert predictions == stored and predictions

        cmp_job = await client.compare("det", "weak", dataset, imgsz=IMGSZ, bootstrap_resamples=0)
        compared = await client.wait(cmp_job["job_id"], interval=0.05)
        assert compared["status"] == "completed", compared
        metrics = compared["result"]["metrics"]
        assert metrics["mAP50_95"]["a"] == pytest.approx(result["mAP50_95"])

        assert {m["name"] for m in (await client.models())["models"]} == {"det", "weak"}
        first = await client.promote("det", 1, reason="first", force=True)  # unevaluated versions need force
        second = await client.promote("det", 2, reason="second", force=True)
        assert (first["decision"], first["version"], second["version"]) == ("promoted", 1, 2)
        assert (await client.model("det"))["current"]["version"] == 2
        # /metrics: current.pt now holds the bytes evaluated above (det resolved to its newest, v2).
        assert result["checkpoint_sha256"] == (await client.model("det"))["current"]["sha256"]
        async with aiohttp.ClientSession() as http, http.get(f"{url(svc)}/metrics") as r:
            samples = parse_prometheus(await r.text())
        assert value_of(samples, "vision_evald_promoted_version", model="det") == 2
        assert value_of(samples, "vision_evald_promoted_map50_95", model="det") == pytest.approx(result["mAP50_95"])
        assert value_of(samples, "vision_evald_promoted_score", model="det") == pytest.approx(default_score(result))
        back = await client.rollback("det", reason="undo")
        assert back["decision"] == "rollback"
        detail = await client.model("det")
        assert detail["current"]["version"] == 1
        reasons = [p["reason"] for p in detail["promotions"]]
        assert len(reasons) == 3 and all(r.endswith(w) for r, w in zip(reasons, ("undo", "second", "first"))), reasons
        assert detail == await asyncio.to_thread(sync.model, "det")


async def test_cli_waits_with_plain_progress_lines_when_stderr_is_a_pipe(
        tmp_path: Path, ultralytics_env: Path, strong_pt: Path, synth_dataset: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    place_model(tmp_path / "models", "det", strong_pt, "v1.pt")
    async with running_service(tmp_path, executor=ThreadExecutor()) as svc:
        argv = ["--url", url(svc), "eval", "det", str(synth_dataset), "--imgsz", str(IMGSZ)]
        code = await asyncio.to_thread(cli.main, argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"^model\s+det\b", out, re.M)
    lines = err.splitlines()
    assert "\r" not in err and lines, err
    assert all(re.fullmatch(r"eval \w+ (queued|running|completed) \d{1,3}%", line) for line in lines), lines
    assert re.fullmatch(r"eval \w+ completed 100%", lines[-1])
