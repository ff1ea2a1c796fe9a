"""The Ray backend (daemon/jobs/ray_backend.py): a real daemon with ``[workers] backend = "ray"`` on a
local Ray head that declares one GPU (none exists: pinning is exercised, inference runs on the CPU).

One Ray head for the whole module (the daemon's); the last test ends it.

- an evaluation's numbers and predictions equal an in-process evaluation with the same arguments;
- an actor SIGKILLed in the middle of a job, with every core saturated by a CPU hog, is noticed and the
  job completed on a retry, charged one attempt and no interruption, as a local worker's death is;
- an actor that stops answering (SIGSTOP: its node cut off) is taken for lost and its job retried;
- a node that sees other checkpoint bytes than the daemon hashed refuses the task, naming itself;
- Ray's own output reaches the log through the daemon's logger;
- losing the head makes /healthz answer 503 with the reason at once, and the daemon stops with exit
  status 3 after a line of its own, before Ray would end it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from evaluation.evidence import load_evidence
from tests.daemon_fixtures import API_IMGSZ, STRONG_PT, Daemon, make_dataset, place_model, process_gone

if importlib.util.find_spec("ray") is None:  # looked up, not imported: importing ray costs every collection ~0.6 s
    pytest.skip("ray is not installed", allow_module_level=True)

ACCURACY_KEYS = (
    "mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold", "per_class", "per_class_metrics",
    "small_object_recall", "medium_object_recall", "large_object_recall", "small_object_count",
    "medium_object_count", "large_object_count", "checkpoint_sha256", "dataset_fingerprint",
)

EVIDENCE_ACCURACY_KEYS = ("image_names", "pred_offsets", "tp", "conf", "pred_cls", "target_offsets", "target_cls",
                          "gt_offsets", "gt_cls", "gt_bucket", "gt_found", "conf_threshold")


SILENCE_S = 8.0  # [workers] ray_actor_silence_s here (default 20): a frozen actor is lost after this
GRACE_S = 3.0  # [workers] ray_head_grace_s here (default 30): a lost head stops the daemon after this


@pytest.fixture(scope="module")
def ray_daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("ray-daemon")
    daemon = Daemon(root, config={"workers": {"backend": "ray", "ray_local_gpus": 1,
                                              "ray_actor_silence_s": SILENCE_S, "ray_head_grace_s": GRACE_S}})
    place_model(daemon.models_root, "det", STRONG_PT)
    daemon.start()
    yield daemon
    daemon.stop()


def _actor(daemon: Daemon) -> dict[str, Any]:
    info = daemon.health()["worker_info"]
    assert info["backend"] == "ray", info
    assert len(info["actors"]) == 1, info
    return info["actors"][0]


def test_actor_pins_the_declared_gpu_and_the_daemon_imports_no_torch(ray_daemon: Daemon) -> None:
    actor = _actor(ray_daemon)
    assert actor["gpu_ids"] == ["0"]  # one GPU per worker where the cluster has GPUs
    info = ray_daemon.health()["worker_info"]
    assert info["gpus_per_worker"] == 1
    # The local head is on loopback: a unit's IPAddressAllow=localhost lets the daemon reach it.
    assert info["gcs"].startswith("127.0.0.1:") and actor["node"].endswith("(127.0.0.1)"), info
    daemon_maps = Path(f"/proc/{ray_daemon.pid}/maps").read_text()
    assert "libtorch" not in daemon_maps


def test_numbers_equal_an_in_process_evaluation(ray_daemon: Daemon, run_eval: Any, tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n_val=12, seed=3)
    job = ray_daemon.submit_eval(model="det", dataset=str(data), imgsz=API_IMGSZ, batch_size=4)
    done = ray_daemon.wait_job(job["job_id"])
    assert done["status"] == "completed", done
    remote = done["result"]
    local = run_eval(STRONG_PT, data, imgsz=API_IMGSZ, batch=4, device="cpu")
    for key in ACCURACY_KEYS:
        assert remote[key] == local.result[key], key
    row = ray_daemon.query("SELECT predictions_path, evidence_path FROM eval_results WHERE id = ?",
                           (remote["eval_id"],))[0]
    # The actor's files came back to the daemon's state dir, byte for byte what a local run writes.
    assert Path(row["predictions_path"]).is_relative_to(ray_daemon.state_dir)
    assert json.loads(Path(row["predictions_path"]).read_text()) == local.predictions
    for sibling in ("errors.json", "curves.json"):  # the error analysis written beside them came back too
        assert Path(row["predictions_path"]).with_name(sibling).is_file(), sibling
    remote_ev, local_ev = load_evidence(Path(row["evidence_path"])), load_evidence(local.evidence_path)
    for key in EVIDENCE_ACCURACY_KEYS:  # timings differ from run to run; what was predicted and matched must not
        assert np.array_equal(remote_ev[key], local_ev[key], equal_nan=key == "conf_threshold"), key


@contextmanager
def cpu_hogs(n: int = 2) -> Iterator[None]:
    """``n`` busy-loop processes (this machine's cores saturated) for the duration; killed on leaving."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=30)


def _job_row(daemon: Daemon, job_id: str) -> dict[str, Any]:
    return dict(daemon.query("SELECT status, attempts, interruptions, error FROM jobs WHERE id = ?", (job_id,))[0])


def _retried_and_completed(daemon: Daemon, job_id: str, death: str) -> None:
    """The job's worker death is noticed within 30 s (its note names it), and the job completes on the
    retry, charged one more attempt and no interruption, as for a local worker's death."""
    noted = daemon.wait_for(lambda: death in (_job_row(daemon, job_id)["error"] or ""), 30.0,
                            f"the job to note {death!r}")
    assert noted
    done = daemon.wait_job(job_id)
    assert done["status"] == "completed", done
    row = _job_row(daemon, job_id)
    assert (row["attempts"], row["interruptions"]) == (2, 0), row
    assert re.search(rf"job {job_id} requeued: .*{re.escape(death)}", daemon.log()), daemon.log_tail()


def test_actor_killed_mid_job_on_a_busy_machine_is_retried_and_completed(ray_daemon: Daemon, tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "big", n_val=64, seed=4)  # 32 batches: killed after its first
    before = _actor(ray_daemon)["pid"]
    with cpu_hogs():
        job = ray_daemon.submit_eval(model="det", dataset=str(data), imgsz=API_IMGSZ, batch_size=2)
        ray_daemon.wait_job(job["job_id"], ("running",), predicate=lambda j: j["progress"] > 0)
        os.kill(before, signal.SIGKILL)
        _retried_and_completed(ray_daemon, job["job_id"], f"pid {before} on")
    assert _actor(ray_daemon)["pid"] != before
    assert ray_daemon.health()["ok"]


def test_an_actor_that_stops_answering_is_lost_and_its_job_retried(ray_daemon: Daemon, tmp_path: Path) -> None:
    """A frozen actor (SIGSTOP) is what a node cut off from the daemon looks like: Ray reports nothing."""
    data = make_dataset(tmp_path / "data", n_val=24, seed=5)  # 12 batches: frozen after its first
    frozen = psutil.Process(_actor(ray_daemon)["pid"])
    job = ray_daemon.submit_eval(model="det", dataset=str(data), imgsz=API_IMGSZ, batch_size=2)
    ray_daemon.wait_job(job["job_id"], ("running",), predicate=lambda j: j["progress"] > 0)
    frozen.suspend()
    try:
        _retried_and_completed(ray_daemon, job["job_id"], f"answered nothing for {SILENCE_S:g} s")
        ray_daemon.wait_for(lambda: process_gone(frozen), 30.0, "the frozen actor to be killed")
    finally:
        with suppress(psutil.NoSuchProcess):
            frozen.resume()


def test_metrics_show_jobs_per_actor_with_node_and_gpu(ray_daemon: Daemon) -> None:

    actor = _actor(ray_daemon)
    text = ray_daemon.http.get("/metrics", timeout=10).text
    line = next(x for x in text.splitlines() if x.startswith("vision_evald_actor_jobs_total{"))
    assert f'pid="{actor["pid"]}"' in line and 'gpu_ids="0"' in line and 'backend="ray"' in line
    assert float(line.rsplit(" ", 1)[1]) == actor["jobs"]


def test_a_node_seeing_other_checkpoint_bytes_refuses_and_names_itself(tmp_path: Path) -> None:
    """The check each actor makes before an evaluation (run here without Ray: it is plain file reading)."""
    from daemon.jobs.ray_actor import verify_inputs
    from evaluation.datasets import file_sha256, fingerprint, load_dataset

    data = make_dataset(tmp_path / "data", n_val=2, seed=1)
    ckpt = tmp_path / "v1.pt"
    shutil.copyfile(STRONG_PT, ckpt)
    spec = {"model_path": str(ckpt), "model_name": "v1", "dataset_path": str(data), "imgsz": 320, "batch": 2}
    params = {"spec": spec, "device": "cpu", "work_dir": str(tmp_path / "work"),
              "predictions_path": str(tmp_path / "p.json"), "evidence_path": str(tmp_path / "e.npz"),
              "checkpoint_sha256": file_sha256(ckpt), "dataset_fingerprint": fingerprint(load_dataset(data))}
    assert verify_inputs(params) is None
    with open(ckpt, "ab") as f:
        f.write(b"changed after submission")
    problem = verify_inputs(params)
    assert problem is not None and "node" in problem and str(ckpt) in problem
    os.remove(ckpt)
    problem = verify_inputs(params)
    assert problem is not None and "cannot read" in problem


def test_files_made_on_a_node_land_where_a_local_worker_would_write_them(tmp_path: Path) -> None:
    """Staging and landing (no Ray needed): a train task's checkpoint in node-local scratch, an export
    beside a staged input, and an evaluation's named outputs all come back to the daemon's paths."""
    from daemon.jobs.ray_actor import _Staging
    from daemon.jobs.ray_backend import _land_files

    daemon_work = tmp_path / "state" / "train" / "job1"
    staging = _Staging("train", {"work_dir": str(daemon_work), "epochs": 1}, {})
    trained = Path(staging.params["work_dir"]) / "train" / "weights" / "best.pt"
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"weights")
    msg = {"type": "result", "result": {"checkpoint": str(trained), "epochs": 1}}
    msg.update(staging.collect(msg["result"]))
    staging.remove()
    landed = _land_files({"work_dir": str(daemon_work)}, msg)
    assert landed["checkpoint"] == str(daemon_work / "train" / "weights" / "best.pt")
    assert Path(landed["checkpoint"]).read_bytes() == b"weights"

    ckpt = tmp_path / "models" / "det" / "v2.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"pt")
    staging = _Staging("export", {"checkpoint": str(ckpt), "imgsz": 320}, {"checkpoint": ckpt.read_bytes()})
    assert staging.params["checkpoint"] != str(ckpt) and Path(staging.params["checkpoint"]).read_bytes() == b"pt"
    onnx = Path(staging.params["checkpoint"]).with_suffix(".onnx")
    onnx.write_bytes(b"onnx")
    msg = {"type": "result", "result": {"onnx": str(onnx)}}
    msg.update(staging.collect(msg["result"]))
    staging.remove()
    assert _land_files({"checkpoint": str(ckpt)}, msg)["onnx"] == str(ckpt.with_suffix(".onnx"))
    assert ckpt.with_suffix(".onnx").read_bytes() == b"onnx"

    art = tmp_path / "state" / "artifacts" / "k"
    params = {"predictions_path": str(art / "predictions.json"), "evidence_path": str(art / "evidence.npz"),
              "work_dir": str(art / "work"), "model_path": str(ckpt)}
    staging = _Staging("eval", params, {})
    assert staging.params["model_path"] == str(ckpt)  # inputs on the shared file system are read in place
    Path(staging.params["predictions_path"]).write_text("[]")
    Path(staging.params["predictions_path"]).with_name("errors.json").write_text("{}")  # a sibling artifact
    Path(staging.params["evidence_path"]).write_bytes(b"npz")
    msg = {"type": "result", "result": {"mAP50": 1.0}}
    msg.update(staging.collect(msg["result"]))
    staging.remove()
    _land_files(params, msg)
    assert (art / "predictions.json").read_text() == "[]" and (art / "evidence.npz").read_bytes() == b"npz"
    assert (art / "errors.json").read_text() == "{}"

    # Re-analysing a stored evaluation: predictions and evidence go to the node, the analysis comes back.
    staging = _Staging("analyse", {"predictions_path": str(art / "predictions.json"),
                                   "evidence_path": str(art / "evidence.npz")},
                       {"predictions_path": b"[1]", "evidence_path": b"npz"})
    Path(staging.params["predictions_path"]).with_name("curves.json").write_text("[2]")
    msg = {"type": "result", "result": {}}
    msg.update(staging.collect(msg["result"]))
    staging.remove()
    assert msg["outputs"] == {"predictions_path": {"curves.json": b"[2]"}}  # the inputs do not travel back
    _land_files({"predictions_path": str(art / "predictions.json")}, msg)
    assert (art / "curves.json").read_text() == "[2]" and (art / "predictions.json").read_text() == "[]"


def test_a_train_job_on_an_actor_reports_its_epochs(ray_daemon: Daemon, tmp_path: Path) -> None:

    data = make_dataset(tmp_path / "train-data", n_val=4, seed=6)  # the val split doubles as train split
    r = ray_daemon.http.post("/v1/vision/train", timeout=30, json={
        "model": "ray-trained", "dataset": str(data), "config": {"epochs": 2, "imgsz": 320, "batch_size": 4}})
    assert r.status_code == 202, r.text
    done = ray_daemon.wait_job(r.json()["job_id"])
    assert done["status"] == "completed", done
    # The actor's epoch reports reach the job, the last one included (relayed after the task too).
    assert (done["current_epoch"], done["epoch"], done["total_epochs"]) == (2, 2, 2)
    assert isinstance(done["loss"], float) and done["loss"] > 0 and "metrics/mAP50(B)" in done["metrics"]


def test_rays_own_output_goes_through_the_daemons_logger(ray_daemon: Daemon) -> None:
    """Ray's Python warnings and the lines its C++ core and driver print go through our text format."""
    text = ray_daemon.log()
    ours = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
    ray_lines = [line for line in text.splitlines() if re.search(r"\(raylet\)|Token authentication|\] \w+\.(cc|h):\d+", line)]
    assert ray_lines, text  # the local head's token notice, at least
    assert not re.search(r"^\[\d{4}-\d\d-\d\d ", text, re.M)  # no line in Ray's own C++ format
    assert all(ours.match(line) for line in ray_lines), [line for line in ray_lines if not ours.match(line)]


def test_losing_the_head_fails_health_at_once_and_stops_the_daemon_with_status_3(ray_daemon: Daemon) -> None:
    """The last test of the module: it ends the module's Ray head (its GCS process, SIGKILLed)."""
    processes = ray_daemon.descendants()  # the head and its workers: reaped here, whatever happens
    gcs = next(p for p in processes if p.name() == "gcs_server")
    try:
        gcs.kill()
        health = ray_daemon.wait_for(lambda: _unhealthy(ray_daemon), 15.0, "/healthz to answer 503")
        assert "local Ray head" in health["reason"] and "gcs_server" in health["reason"], health
        assert f"unless it answers within {GRACE_S:g} s" in health["reason"], health
        assert ray_daemon.proc is not None
        assert ray_daemon.proc.wait(timeout=60) == 3, ray_daemon.log_tail()
    finally:
        for p in processes:
            with suppress(psutil.NoSuchProcess):
                p.kill()
    log = ray_daemon.log()
    assert re.search(r"CRITICAL daemon\.jobs\.ray_backend: the local Ray head .*gcs_server.*the daemon stops", log), log
    assert "stopped, exit status 3" in log
    assert "Failed to connect to GCS within" not in log  # the daemon stopped before Ray would have ended it


def _unhealthy(daemon: Daemon) -> dict[str, Any] | None:
    try:
        r = daemon.http.get("/healthz", timeout=5.0)
    except Exception:  # noqa: BLE001 - stopping already: no answer is not the answer looked for
        return None
    return r.json() if r.status_code == 503 else None
