"""Security of the HTTP API against a started daemon (nothing mocked).

The daemon is the real ``Service`` in the test process (``tests.inprocess.InProcessDaemon``: real
SQLite file, models folder, HTTP port and start-up reconcile; the worker tasks run in a thread): what
is checked here is the HTTP layer, path resolution and dataset handling, which are the same code in
the ``vision-evald`` process. What needs that process keeps one: refusing to start on a non-loopback
host (the command's exit code) here, and the browser guard of a real daemon in
tests/test_dashboard.py.

- Paths: traversal in model names and paths, absolute paths outside
  ``[paths] allowed_roots``, a sibling folder that merely shares the allowed
  root's prefix, symlinks under the models root (a ``current.pt`` and a whole
  model folder) and under an allowed root that lead outside: each answer is a
  400/403/404 JSON detail, no job is created, and nothing outside is read --
  an inotify watch on the outside folder sees no file opened.
- Datasets outside the allowed roots (directly, by ``..``, by symlink): 403.
- ``download:`` in a dataset YAML (ultralytics ``exec``s it, or runs it with
  ``subprocess`` when it starts with ``bash ``, whenever the val split is
  missing) is never executed: not at submit time (400), not when the val split
  vanishes between submit and run (the job fails clearly), and the sanitised
  YAML the worker hands ultralytics has no ``download`` key -- checked by
  running ultralytics' own ``check_det_dataset`` on it, with a control run on
  the original YAML that shows the vector is live in this ultralytics version.
- Bodies over ``max_body_bytes``: 413 JSON (JSON, urlencoded, multipart,
  chunked without a Content-Length). Wrong content types: 415 JSON.
- The optional bearer token: 401 JSON without it or with a wrong one (before
  any validation, on unknown routes too), 200 with it, /healthz open, the
  token never logged.
- Binding: the default host is 127.0.0.1 (the daemon listens on loopback
  only); a non-loopback host without a token refuses to start with exit 2.
- A hostile/malformed request list (non-UTF-8 bytes, huge numbers, deep
  nesting, NUL bytes, negative limits, unicode names, very long paths and
  URLs, duplicate form fields, file uploads in place of fields, broken HTTP)
  gets only 4xx JSON answers, and the daemon stays healthy.

What this cannot show: that no code path we did not exercise reads outside
(the inotify watch sees opens, not stat() calls, and only during the requests
made here); the daemon's start-up (reconcile) runs before the watch begins.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from tests.daemon_fixtures import (
    API_IMGSZ,
    STRONG_PT,
    WEAK_PT,
    make_dataset,
    place_model,
    vision_evald_command,
    write_toml,
)
from tests.inprocess import InProcessDaemon
from vocab.config import load_config
from vocab.errors import ConfigError

MAX_BODY = 64 * 1024
TOKEN = "t0ken-Sec-4f9c2a"
POST_ROUTES = ("/v1/vision/eval", "/v1/vision/eval/compare", "/v1/vision/train",
               "/v1/vision/models/good/promote", "/v1/vision/models/good/rollback")


class Env:
    def __init__(self, daemon: InProcessDaemon, root: Path) -> None:
        self.daemon = daemon
        self.root = root
        self.allowed = root / "allowed"
        self.outside = root / "outside"
        self.sibling = root / "allowed_evil"  # shares the allowed root's prefix, is not under it
        self.small = self.allowed / "small" / "data.yaml"
        self.watch: Any = None
        self.startup_opens: list[str] = []

    @property
    def url(self) -> str:
        return self.daemon.url

    def fmt(self, text: str) -> str:
        return text.format(allowed=self.allowed, outside=self.outside, sibling=self.sibling,
                           models=self.daemon.models_root, small=self.small)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.daemon.http.post(path, **kwargs)

    def jobs_count(self) -> int:
        return self.daemon.query("SELECT COUNT(*) FROM jobs")[0][0]


class OpenWatch:
    """Every file opened under some folders, as inotify reports it (IN_OPEN), from ``start()`` on.

    inotify delivers a folder's events in order: opening a sentinel file of our own and waiting for its
    event shows that every earlier open has arrived (no sleeping to let events come in)."""

    SENTINEL = ".open-watch-sentinel"

    def __init__(self, folders: list[Path]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers.inotify import InotifyObserver

        self.folders = folders
        self.opened: list[str] = []
        self.marks = 0
        opened = self.opened

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type == "opened" and not event.is_directory:
                    opened.append(str(event.src_path))

        self.observer = InotifyObserver()
        for folder in folders:
            self.observer.schedule(Handler(), str(folder), recursive=True)

    def start(self) -> None:
        self.observer.start()
        self._flush()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=10)

    def _flush(self) -> None:
        """Open a sentinel in every watched folder and wait for those events: all earlier ones are in."""
        self.marks += 1
        sentinels = [str(folder / f"{self.SENTINEL}-{self.marks}") for folder in self.folders]
        for path in sentinels:
            Path(path).write_bytes(b"")
        deadline = time.monotonic() + 30
        while not all(p in self.opened for p in sentinels):
            assert time.monotonic() < deadline, "inotify never reported the sentinel opens"
            time.sleep(0.01)

    def since(self, mark: int) -> list[str]:
        self._flush()
        return [p for p in self.opened[mark:] if self.SENTINEL not in Path(p).name]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("security")
    daemon = InProcessDaemon(root, config={"paths": {"allowed_roots": [str(root / "allowed")]}})
    e = Env(daemon, root)
    place_model(daemon.models_root, "good", STRONG_PT)
    make_dataset(e.allowed / "small", n_val=16, seed=1)
    # Outside the allowed roots and the models root: a checkpoint, a model folder, a dataset.
    place_model(e.outside, "dir", WEAK_PT)  # outside/dir/v1.pt
    shutil.copyfile(WEAK_PT, e.outside / "secret.pt")
    make_dataset(e.outside / "data", n_val=4, seed=2)
    place_model(e.sibling, "x", WEAK_PT)
    shutil.copyfile(WEAK_PT, e.sibling / "secret.pt")
    shutil.copyfile(e.outside / "data" / "data.yaml", e.sibling / "data.yaml")
    # Links that leave their roots: a model's current.pt, a whole model folder, a .pt, a YAML, a folder.
    (daemon.models_root / "evil").mkdir()
    (daemon.models_root / "evil" / "current.pt").symlink_to(e.outside / "secret.pt")
    (daemon.models_root / "evildir").symlink_to(e.outside / "dir")
    (e.allowed / "link.pt").symlink_to(e.outside / "secret.pt")
    (e.allowed / "link.yaml").symlink_to(e.outside / "data" / "data.yaml")
    (e.allowed / "linkdir").symlink_to(e.outside / "data")
    e.watch = OpenWatch([e.outside, e.sibling])
    e.watch.start()
    try:
        daemon.start()
        e.startup_opens = e.watch.since(0)
        yield e
    finally:
        daemon.stop()
        e.watch.stop()


@pytest.fixture
def outside_opens(env: Env) -> Any:
    """``outside_opens()``: files opened outside the roots since this test began."""
    mark = len(env.watch.opened)
    return lambda: env.watch.since(mark)


def test_startup_reads_nothing_outside_the_roots(env: Env) -> None:
    """Start-up reconcile hashes every current.pt: not through a link that leaves the models root."""
    assert env.startup_opens == [], env.startup_opens
    assert "not reconciling evil" in env.daemon.log() and "not reconciling evildir" in env.daemon.log()


def assert_json_error(r: httpx.Response, statuses: int | tuple[int, ...]) -> str:
    expected = (statuses,) if isinstance(statuses, int) else statuses
    assert r.status_code in expected, (r.status_code, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
    return body["detail"]


# --------------------------------------------------------------------------- model paths

MODEL_CASES = [
    ("dotdot", "..", 400),
    ("dotdot-slash-x", "../x", 400),
    ("a-dotdot-etc-passwd", "a/../../etc/passwd", 400),
    ("relative-to-outside", "../outside/secret.pt", 400),
    ("percent-encoded-dotdot", "%2e%2e%2fsecret.pt", 400),
    ("backslashes", "..\\..\\outside\\secret.pt", 400),
    ("etc-passwd", "/etc/passwd", 400),  # not a .pt: refused before anything is opened
    ("tilde-unknown-user", "~nosuchuser/x.pt", 400),
    ("name-with-dotdot-inside", "good..", 400),
    ("absolute-outside", "{outside}/secret.pt", 403),
    ("absolute-outside-folder-version", "{outside}/dir/v1.pt", 403),
    ("traversal-from-models-root", "{models}/../outside/secret.pt", 403),
    ("traversal-from-allowed-root", "{allowed}/../outside/secret.pt", 403),
    ("prefix-sibling-of-allowed-root", "{sibling}/secret.pt", 403),
    ("symlink-in-allowed-root", "{allowed}/link.pt", 403),
    ("symlinked-current-pt", "evil", 403),
    ("symlinked-model-folder", "evildir", 403),
    ("missing-file-inside", "{allowed}/none.pt", 404),
    ("unknown-name", "no-such-model", 404),
]


@pytest.mark.parametrize("model,status", [(m, s) for _, m, s in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_model_traversal_is_refused_and_nothing_outside_is_read(env: Env, outside_opens: Any,
                                                                 model: str, status: int) -> None:
    model = env.fmt(model)
    small = str(env.small)
    before = env.jobs_count()
    requests = [
        ("eval json", "/v1/vision/eval", {"json": {"model": model, "dataset": small, "imgsz": API_IMGSZ}}),
        ("eval form", "/v1/vision/eval", {"data": {"model": model, "dataset": small}}),
        ("compare", "/v1/vision/eval/compare", {"json": {"model_a": "good", "model_b": model, "dataset": small}}),
        ("train base", "/v1/vision/train", {"json": {"model": "newmodel", "dataset": small, "base_model": model}}),
    ]
    for what, path, kwargs in requests:
        detail = assert_json_error(env.post(path, **kwargs), status)
        assert "Traceback" not in detail, (what, detail)
    assert env.jobs_count() == before, "a refused request created a job"
    assert (opened := outside_opens()) == [], f"files outside the roots were opened: {opened}"


def test_model_detail_and_promote_refuse_links_that_leave_the_models_root(env: Env, outside_opens: Any) -> None:
    assert_json_error(httpx.get(f"{env.url}/v1/vision/models/evildir", timeout=10), 403)
    evil = httpx.get(f"{env.url}/v1/vision/models/evil", timeout=10)  # the model stays visible ...
    assert evil.status_code == 200, evil.text
    assert evil.json()["current"]["sha256"] is None  # ... but its outside current.pt is never read
    assert "leaves the models root" in evil.json()["current"]["error"]
    assert_json_error(env.post("/v1/vision/models/evildir/promote", json={"version": 1}), 403)
    assert_json_error(env.post("/v1/vision/models/evil/rollback"), 403)
    assert_json_error(env.post("/v1/vision/models/evildir/rollback"), 403)
    assert sorted(p.name for p in (env.outside / "dir").iterdir()) == ["v1.pt"], "something was written outside"
    names = [m["name"] for m in httpx.get(f"{env.url}/v1/vision/models", timeout=10).json()["models"]]
    assert "evildir" not in names
    assert (opened := outside_opens()) == [], f"files outside the roots were opened: {opened}"


# --------------------------------------------------------------------------- datasets

DATASET_CASES = [
    ("outside", "{outside}/data/data.yaml", 403),
    ("dotdot-from-allowed", "{allowed}/../outside/data/data.yaml", 403),
    ("symlinked-yaml", "{allowed}/link.yaml", 403),
    ("symlinked-folder", "{allowed}/linkdir/data.yaml", 403),
    ("prefix-sibling", "{sibling}/data.yaml", 403),
    ("etc-passwd", "/etc/passwd", 403),
    ("relative", "allowed/small/data.yaml", 400),
    ("tilde-unknown-user", "~nosuchuser/data.yaml", 400),
]


@pytest.mark.parametrize("dataset,status", [(d, s) for _, d, s in DATASET_CASES], ids=[c[0] for c in DATASET_CASES])
def test_datasets_outside_the_allowed_roots_are_refused(env: Env, outside_opens: Any,
                                                        dataset: str, status: int) -> None:
    dataset = env.fmt(dataset)
    before = env.jobs_count()
    assert_json_error(env.post("/v1/vision/eval", json={"model": "good", "dataset": dataset}), status)
    assert_json_error(env.post("/v1/vision/eval", data={"model": "good", "dataset": dataset}), status)
    assert_json_error(env.post("/v1/vision/eval/compare",
                               json={"model_a": "good", "model_b": "good", "dataset": dataset}), status)
    assert_json_error(env.post("/v1/vision/train", json={"model": "newmodel", "dataset": dataset}), status)
    assert env.jobs_count() == before
    assert (opened := outside_opens()) == [], f"files outside the roots were opened: {opened}"


# --------------------------------------------------------------------------- download: never executed


def _download_yamls(base: Path, markers: Path, *, with_val: bool, seed: int) -> dict[str, Path]:
    """Three dataset YAMLs whose ``download`` would each create a marker file in ``markers``."""
    script = markers / "pwn3.sh"
    script.write_text(f"#!/bin/sh\ntouch {markers / 'PWNED3'}\n")
    script.chmod(0o755)
    downloads = {
        "python": f"import pathlib; pathlib.Path({str(markers / 'PWNED')!r}).touch()",
        "bash-c": f"bash -c 'touch {markers / 'PWNED2'}'",
        "bash-script": f"bash {script}",  # survives ultralytics' naive s.split()
    }
    out = {}
    for i, (kind, command) in enumerate(downloads.items()):
        folder = base / kind
        if with_val:
            yaml_path = make_dataset(folder, n_val=4, seed=seed + i)
            data = yaml.safe_load(yaml_path.read_text())
        else:
            folder.mkdir(parents=True)
            yaml_path = folder / "data.yaml"
            data = {"path": str(folder), "train": "images/train", "val": "images/val",
                    "names": {0: "red", 1: "green", 2: "blue"}}
        data["download"] = command
        yaml_path.write_text(yaml.safe_dump(data, sort_keys=False))
        out[kind] = yaml_path
    return out


def _markers(markers: Path) -> list[str]:
    return sorted(p.name for p in markers.iterdir() if p.name.startswith("PWNED"))


def test_download_key_is_never_executed_at_submit(env: Env) -> None:
    markers = env.root / "markers_submit"
    markers.mkdir()
    yamls = _download_yamls(env.allowed / "dl_submit", markers, with_val=False, seed=0)
    before = env.jobs_count()
    for path in yamls.values():
        for kwargs in ({"json": {"model": "good", "dataset": str(path)}},
                       {"data": {"model": "good", "dataset": str(path)}}):
            detail = assert_json_error(env.post("/v1/vision/eval", **kwargs), 400)
            assert "val" in detail.lower() or "not found" in detail.lower() or "missing" in detail.lower(), detail
        assert_json_error(env.post("/v1/vision/eval/compare",
                                   json={"model_a": "good", "model_b": "good", "dataset": str(path)}), 400)
        assert_json_error(env.post("/v1/vision/train", json={"model": "newmodel", "dataset": str(path)}), 400)
    # Submit-time checks run before the answer: every request has been answered, so anything they could
    # have executed would be on disk now (test_sanitised_yaml_gives_ultralytics_nothing_to_execute shows
    # the marker check catches a live download: vector).
    assert _markers(markers) == [], "a dataset's download: was executed"
    assert env.jobs_count() == before


def test_download_key_is_never_executed_when_val_vanishes_before_the_run(env: Env) -> None:
    d = env.daemon
    markers = env.root / "markers_run"
    markers.mkdir()
    blocker = make_dataset(env.allowed / "blocker", n_val=8, seed=40)
    yamls = _download_yamls(env.allowed / "dl_run", markers, with_val=True, seed=50)
    queued = {}
    with d.paused():  # the one worker frozen on the blocker: the jobs behind it cannot start
        busy = d.submit_eval(model="good", dataset=str(blocker))["job_id"]
        d.wait_job(busy, ("running",), timeout=60)
        for kind, path in yamls.items():
            job = d.submit_eval(model="good", dataset=str(path))
            queued[kind] = job["job_id"]
            shutil.rmtree(path.parent / "images" / "val")  # valid at submit time, gone before the run
        for job_id in queued.values():
            assert d.job(job_id)["status"] == "queued", "the job started before its val split was removed"
    for kind, job_id in queued.items():
        job = d.wait_job(job_id, timeout=240)
        assert job["status"] == "failed", (kind, job)
        assert "val" in job["error"].lower() or "not found" in job["error"].lower(), job["error"]
    assert d.wait_job(busy, timeout=240)["status"] == "completed"
    # Each job ran (and failed) in the worker before its failure was recorded: whatever it executed is on
    # disk by now.
    assert _markers(markers) == [], "a dataset's download: was executed"
    assert d.health()["ok"] is True


def test_sanitised_yaml_gives_ultralytics_nothing_to_execute(ultralytics_env: Path, tmp_path: Path) -> None:
    """The worker hands ultralytics ``Dataset.write_sanitised``; with val missing, ultralytics' own
    check_det_dataset must fail without executing anything. The control run on the original YAML
    shows the vector is live (ultralytics does exec ``download``) and that the marker check works."""
    from ultralytics.data.utils import check_det_dataset

    from evaluation.datasets import load_dataset

    markers = tmp_path / "markers"
    markers.mkdir()
    yamls = _download_yamls(tmp_path / "dl", markers, with_val=True, seed=60)
    sanitised = {}
    for kind, path in yamls.items():
        ds = load_dataset(path)
        sanitised[kind] = ds.write_sanitised(tmp_path / "sanitised" / kind)
        assert "download" not in yaml.safe_load(sanitised[kind].read_text()), kind
        shutil.rmtree(path.parent / "images" / "val")
    for path in sanitised.values():
        with pytest.raises(FileNotFoundError):
            check_det_dataset(str(path))
    assert _markers(markers) == [], "ultralytics executed something from a sanitised YAML"

    try:
        check_det_dataset(str(yamls["python"]))  # control: the raw YAML, val missing
    except Exception:  # noqa: BLE001 - it may fail after running the download; the marker is what counts
        pass
    assert _markers(markers) == ["PWNED"], "control: ultralytics did not execute download: as expected"


# --------------------------------------------------------------------------- body limits and content types


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * 8192
        sent += 8192


@pytest.mark.parametrize("route", POST_ROUTES)
def test_bodies_over_max_body_bytes_are_413(env: Env, route: str) -> None:
    pad = "x" * (MAX_BODY + 1024)
    cases = {
        "json": {"json": {"model": "good", "dataset": str(env.small), "pad": pad}},
        "urlencoded": {"data": {"model": "good", "pad": pad}},
        "multipart": {"data": {"model": "good"}, "files": {"pad": ("pad.txt", pad.encode())}},
        "chunked-json": {"content": _chunks(MAX_BODY * 2), "headers": {"Content-Type": "application/json"}},
    }
    for what, kwargs in cases.items():
        detail = assert_json_error(env.post(route, **kwargs), 413)
        assert str(MAX_BODY) in detail, (what, detail)
    assert env.daemon.health()["ok"] is True


@pytest.mark.parametrize("route", POST_ROUTES)
def test_wrong_content_types_are_415(env: Env, route: str) -> None:
    body = json.dumps({"model": "good", "dataset": str(env.small)}).encode()
    for ctype in ("text/plain", "application/xml", "application/octet-stream", "application/x-yaml",
                  "text/json", "application/jsonx", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = env.post(route, content=body, headers=headers)
        assert_json_error(r, 415)


# --------------------------------------------------------------------------- token and binding


@pytest.fixture(scope="module")
def token_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDaemon]:
    """A daemon with a bearer token and no [server] host in its config: the default applies."""
    daemon = InProcessDaemon(tmp_path_factory.mktemp("token"), config={"server": {"auth_token": TOKEN}})
    try:
        daemon.start(wait_workers=False)
        yield daemon
    finally:
        daemon.stop()


def test_bearer_token_is_required_everywhere_but_healthz(token_daemon: InProcessDaemon) -> None:
    url = token_daemon.url
    good = {"Authorization": f"Bearer {TOKEN}"}
    wrong_headers = [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {TOKEN}x"},
                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
                     {"Authorization": f"Bearer  {TOKEN}"}, {"X-Auth-Token": TOKEN}]
    gets = ["/v1/vision/jobs", "/v1/vision/eval/leaderboard", "/v1/vision/models", "/metrics", "/openapi.json",
            "/v1/vision/no-such-route"]
    with httpx.Client(base_url=url, timeout=10) as client:
        for headers in wrong_headers:
            for path in gets:
                r = client.get(path, headers=headers)
                assert_json_error(r, 401)
                assert r.headers.get("WWW-Authenticate") == "Bearer", r.headers
            # Authentication comes before validation: a bad body is not even looked at.
            assert_json_error(client.post("/v1/vision/eval", content=b"{not json",
                                          headers={**headers, "Content-Type": "application/json"}), 401)
        for path in gets[:5]:
            assert client.get(path, headers=good).status_code == 200, path
        assert_json_error(client.get("/v1/vision/no-such-route", headers=good), 404)
        assert_json_error(client.post("/v1/vision/eval", json={"model": "nope", "dataset": "/x.yaml"},
                                      headers=good), 404)
        for probe in ("/healthz", "/health"):  # open: LlamaFarm's server probes /health without a token
            h = client.get(probe)
            assert h.status_code == 200 and h.json()["ok"] is True, probe
        assert TOKEN not in token_daemon.log(), "the token appears in the daemon's log"
        # Only the header counts (a token in the URL is not accepted, and URLs are logged).
        assert_json_error(client.get(f"/v1/vision/jobs?access_token={TOKEN}"), 401)


def test_default_bind_is_loopback(token_daemon: InProcessDaemon, tmp_path: Path) -> None:
    assert load_config(None, environ={}).server.host == "127.0.0.1"
    assert load_config(write_toml(tmp_path / "c.toml", {"server": {"port": 11599}}), environ={}).server.host \
        == "127.0.0.1"
    assert "host" not in token_daemon.extra["server"]
    # The daemon's listening sockets (in this process, on its port): loopback only, no wildcard address.
    listening = [c for c in psutil.Process().net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == token_daemon.port]
    assert listening, "the daemon listens on nothing"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening


NON_LOOPBACK = [
    {"host": "0.0.0.0"},
    {"host": "::"},
    {"host": "192.0.2.10"},
    {"host": "0.0.0.0", "allow_non_loopback": True},  # the flag alone is not enough: a token is required too
    {"host": "0.0.0.0", "auth_token": TOKEN},  # a token alone is not enough either
]


@pytest.mark.parametrize("server", NON_LOOPBACK,
                         ids=["any-v4", "any-v6", "lan-address", "flag-without-token", "token-without-flag"])
def test_non_loopback_host_without_token_and_flag_is_a_config_error(tmp_path: Path, server: dict[str, Any]) -> None:
    cfg = write_toml(tmp_path / "bad.toml", {"server": {"port": 11598, **server}})
    with pytest.raises(ConfigError, match="loopback"):
        load_config(cfg, environ={})
    allowed = write_toml(tmp_path / "ok.toml", {"server": {"port": 11598, **server, "allow_non_loopback": True,
                                                           "auth_token": TOKEN}})
    assert load_config(allowed, environ={}).server.host == server["host"]  # both together: allowed


def test_non_loopback_host_refuses_to_start_with_exit_2(tmp_path: Path) -> None:
    """The command itself (each variant above is the same ConfigError, which main turns into exit 2)."""
    cfg = write_toml(tmp_path / "bad.toml", {
        "server": {"port": 11598, "host": "0.0.0.0"},
        "paths": {"models_root": str(tmp_path / "models"), "state_dir": str(tmp_path / "state")},
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    for args in (["--config", str(cfg)], ["--validate-config", str(cfg)]):
        proc = subprocess.run([*vision_evald_command(), *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.returncode, proc.stdout, proc.stderr)
        assert "loopback" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "models").exists(), "the daemon got as far as creating its folders"


def test_non_loopback_host_from_the_environment_refuses_to_start(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "ok.toml", {
        "server": {"port": 11597},
        "paths": {"models_root": str(tmp_path / "models"), "state_dir": str(tmp_path / "state")},
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    env["VISION_EVALD_SERVER_HOST"] = "0.0.0.0"
    proc = subprocess.run([*vision_evald_command(), "--config", str(cfg)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr, (proc.returncode, proc.stderr)


# --------------------------------------------------------------------------- hostile requests


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one HTTP/1.x response (the server closes or sends Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def _deep(n: int) -> bytes:
    return b'{"model": ' + b"[" * n + b"]" * n + b', "dataset": "/x.yaml"}'


def _hostile(e: Env) -> list[tuple[str, dict[str, Any]]]:
    small = str(e.small)
    jh = {"Content-Type": "application/json"}
    fh = {"Content-Type": "application/x-www-form-urlencoded"}
    return [
        # non-UTF-8 bytes
        ("json-latin1-bytes", {"content": b'{"model": "caf\xe9", "dataset": "/x.yaml"}', "headers": jh}),
        ("json-invalid-utf8", {"content": b'{"model": "\xff\xfe\xfd", "dataset": "/x.yaml"}', "headers": jh}),
        ("json-utf16", {"content": json.dumps({"model": "good"}).encode("utf-16"), "headers": jh}),
        ("json-bom", {"content": b"\xef\xbb\xbf" + json.dumps({"model": "x", "dataset": small}).encode(),
                      "headers": jh}),
        ("form-invalid-utf8-raw", {"content": b"model=\xff\xfe&dataset=/x.yaml", "headers": fh}),
        ("form-invalid-utf8-escaped", {"content": b"model=%ff%fe%fd&dataset=/x.yaml", "headers": fh}),
        ("form-latin1-charset", {"content": b"model=caf\xe9&dataset=/x.yaml",
                                 "headers": {"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"}}),
        # huge and odd numbers
        ("imgsz-10e400", {"content": b'{"model": "good", "dataset": "%s", "imgsz": 1e400}' % small.encode(),
                          "headers": jh}),
        ("imgsz-huge-int", {"content": b'{"model": "good", "dataset": "%s", "imgsz": %s}'
                            % (small.encode(), b"9" * 4000), "headers": jh}),
        ("imgsz-NaN", {"content": b'{"model": "good", "dataset": "%s", "imgsz": NaN}' % small.encode(),
                       "headers": jh}),
        ("batch-negative", {"json": {"model": "good", "dataset": small, "batch_size": -1}}),
        ("form-imgsz-5000-digits", {"data": {"model": "good", "dataset": small, "imgsz": "9" * 5000}}),
        ("weights-NaN", {"content": b'{"model": "good", "dataset": "%s", "weights": {"mAP50": NaN}}'
                         % small.encode(), "headers": jh}),
        ("weights-infinity", {"content": b'{"model": "good", "dataset": "%s", "weights": {"mAP50": Infinity}}'
                              % small.encode(), "headers": jh}),
        ("weights-huge-sum", {"json": {"model": "good", "dataset": small, "weights": {"mAP50": 1e308, "f1": 1e308}}}),
        ("train-lr-nan", {"data": {"model": "m", "dataset": small, "learning_rate": "nan"}}),
        ("train-lr-inf", {"json": {"model": "m", "dataset": small, "config": {"learning_rate": "inf"}}}),
        ("train-epochs-bool", {"json": {"model": "m", "dataset": small, "config": {"epochs": True}}}),
        ("promote-version-float-text", {"json": {"version": "1e3"}, "path": "/v1/vision/models/good/promote"}),
        ("promote-version-huge", {"json": {"version": 10**30}, "path": "/v1/vision/models/good/promote"}),
        # nesting
        ("json-nested-20000", {"content": _deep(20000), "headers": jh}),
        ("json-nested-weights", {"content": b'{"model": "good", "dataset": "x", "weights": {"a": '
                                 + b"[" * 20000 + b"]" * 20000 + b"}}", "headers": jh}),
        ("form-weights-nested-json", {"data": {"model": "good", "dataset": small,
                                               "weights": "[" * 20000 + "]" * 20000}}),
        ("train-config-nested", {"json": {"model": "m", "dataset": small, "config": {"epochs": {"a": {"b": [1]}}}}}),
        ("json-array-of-objects", {"json": [{"model": "good"}] * 100}),
        # NUL bytes
        ("model-nul", {"json": {"model": "go\x00od", "dataset": small}}),
        ("dataset-nul", {"json": {"model": "good", "dataset": small + "\x00.yaml"}}),
        ("form-nul", {"data": {"model": "good\x00", "dataset": small}}),
        ("path-nul", {"method": "GET", "path": "/v1/vision/models/go%00od"}),
        ("query-nul", {"method": "GET", "path": "/v1/vision/eval/leaderboard?dataset=%00"}),
        # limits
        ("leaderboard-limit-negative", {"method": "GET", "path": "/v1/vision/eval/leaderboard?limit=-5"}),
        ("jobs-limit-negative", {"method": "GET", "path": "/v1/vision/jobs?limit=-1"}),
        ("train-jobs-limit-float", {"method": "GET", "path": "/v1/vision/train?limit=1.5"}),
        ("history-limit-huge", {"method": "GET", "path": "/v1/vision/eval/leaderboard/good?limit=" + "9" * 5000}),
        # unicode
        ("model-cjk", {"json": {"model": "模型", "dataset": small}}),
        ("model-fullwidth", {"json": {"model": "ｇｏｏｄ", "dataset": small}}),
        ("model-rtl-override", {"json": {"model": "good\u202etp.", "dataset": small}}),
        ("model-emoji-path", {"json": {"model": "/😀/x.pt", "dataset": small}}),
        ("model-detail-unicode", {"method": "GET", "path": "/v1/vision/models/%E6%A8%A1%E5%9E%8B"}),
        ("promote-unicode", {"json": {"version": 1}, "path": "/v1/vision/models/%E6%A8%A1/promote"}),
        # very long values and URLs
        ("model-4000-char-path", {"json": {"model": "/" + "a" * 4000 + ".pt", "dataset": small}}),
        ("model-5000-char-path", {"json": {"model": "/a" * 2500 + ".pt", "dataset": small}}),
        ("dataset-4000-char-name", {"json": {"model": "good", "dataset": "/" + "d" * 4000 + ".yaml"}}),
        ("url-20000", {"method": "GET", "path": "/v1/vision/jobs/" + "j" * 20000}),
        ("header-20000", {"method": "GET", "path": "/v1/vision/jobs", "headers": {"X-Big": "h" * 20000}}),
        # duplicates and uploads
        ("form-duplicate-model", {"content": f"model=good&model=evil&dataset={small}".encode(), "headers": fh}),
        ("multipart-duplicate", {"data": {"dataset": small}, "files": [("model", (None, "good")),
                                                                         ("model", (None, "evil"))]}),
        ("multipart-upload-model", {"data": {"dataset": small}, "files": {"model": ("m.pt", b"\x80\x02junk")}}),
        ("multipart-upload-dataset", {"data": {"model": "good"}, "files": {"dataset": ("d.yaml", b"val: x")}}),
        ("multipart-broken", {"content": b"--b\r\nno headers here--b--\r\n",
                              "headers": {"Content-Type": "multipart/form-data; boundary=b"}}),
        ("multipart-no-boundary", {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}),
        # other methods and shapes
        ("method-patch", {"method": "PATCH", "path": "/v1/vision/eval"}),
        ("method-options", {"method": "OPTIONS", "path": "/v1/vision/jobs"}),
        ("rollback-json-null", {"content": b"null", "headers": jh, "path": "/v1/vision/models/good/rollback"}),
        ("json-scalar", {"content": b"42", "headers": jh}),
    ]


def _hostile_raw(e: Env) -> list[tuple[str, bytes]]:
    return [
        ("bad-request-line", b"GARBAGE\r\n\r\n"),
        ("bad-content-length", b"POST /v1/vision/eval HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        ("negative-content-length", b"POST /v1/vision/eval HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        ("bad-chunk-size", b"POST /v1/vision/eval HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ("non-utf8-path", b"GET /v1/vision/jobs/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("nul-in-path", b"GET /v1/vision/jobs/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("header-without-colon", b"GET /v1/vision/jobs HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        ("http-0.9-ish", b"GET /v1/vision/jobs HTTP/9.9\r\nHost: x\r\n\r\n"),
    ]


def test_hostile_requests_get_only_4xx_json_and_the_daemon_stays_healthy(env: Env) -> None:
    d = env.daemon
    before = env.jobs_count()
    problems = []
    with httpx.Client(base_url=env.url, timeout=30) as client:
        for name, spec in _hostile(env):
            spec = dict(spec)
            method, path = spec.pop("method", "POST"), spec.pop("path", "/v1/vision/eval")
            try:
                r = client.request(method, path, **spec)
            except httpx.HTTPError as exc:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            ok = 400 <= r.status_code < 500 and r.headers.get("Content-Type", "").startswith("application/json")
            if ok:
                body = r.json()
                ok = isinstance(body, dict) and isinstance(body.get("detail"), str)
            if not ok:
                problems.append(f"{name}: {r.status_code} {r.headers.get('Content-Type')} {r.text[:200]}")
    for name, data in _hostile_raw(env):
        status, headers, body = raw_http(d.port, data)
        if not (400 <= status < 500 and headers.get("content-type", "").startswith("application/json")
                and isinstance(json.loads(body).get("detail"), str)):
            problems.append(f"raw {name}: {status} {headers.get('content-type')} {body[:200]!r}")
    assert not problems, "\n".join(problems)
    assert env.jobs_count() == before, "a hostile request created a job"
    health = d.health()
    assert health["ok"] is True, health
    assert httpx.get(f"{env.url}/healthz", timeout=10).status_code == 200
    log = d.log()
    assert "Traceback" not in log, d.log_tail(80)
    assert '" 500 ' not in log
