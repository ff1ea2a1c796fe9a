"""Helpers for tests that run the real daemon as a child process (``vision-evald --config FILE``).

A plain module (not a conftest): test modules import what they need. Nothing
here is mocked: the daemon is the installed entry point, with its own SQLite
file, models folder and state dir under a test's tmp path, a free port, and
real worker processes running ultralytics on CPU.

Every wait is bounded: a hang fails the test with the daemon's log tail
instead of blocking the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psutil

from vocab.config import toml_literal

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
STRONG_PT = FIXTURES_DIR / "strong.pt"
WEAK_PT = FIXTURES_DIR / "weak.pt"

# strong.pt was trained at imgsz 192, but the API enforces imgsz >= 320; 320 works well.
API_IMGSZ = 320
WORKERS_READY_TIMEOUT_S = 240.0
JOB_TIMEOUT_S = 240.0
STABLE_S = 2.0  # a checkpoint unmodified this long is no longer being written


def vision_evald_command() -> list[str]:
    """The installed ``vision-evald`` entry point of the interpreter running the tests."""
    script = Path(sys.executable).parent / "vision-evald"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "daemon.main"]


def free_port() -> int:
    """A port that was free a moment ago (the config refuses port 0, so we pick one ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_literal(value)}" for key, value in table.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def stable_checkpoint(path: Path, timeout: float = 300.0) -> Path:
    """Wait until ``path`` is a complete torch zip archive, unmodified for ``STABLE_S`` seconds.

    weak.pt may be rewritten by ``make fixtures`` while tests run; never copy a half-written file. A file
    last written long ago (the usual case: the committed checkpoints) is returned without waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if time.time() - path.stat().st_mtime >= STABLE_S and zipfile.is_zipfile(path):
                return path
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not become a stable checkpoint within {timeout:.0f} s")
        time.sleep(0.5)


def place_model(models_root: Path, name: str, source: Path, filename: str = "v1.pt") -> Path:
    """Copy a checkpoint to ``<models_root>/<name>/<filename>`` as a model the API can resolve by name."""
    stable_checkpoint(source)
    target = models_root / name / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


# What every test daemon runs with unless its test says otherwise: 200 bootstrap resamples rather than the
# production 1,000 (a promotion's or an export-parity check's intervals on a dozen images cost about 2.5 s of
# CPU at 1,000; nothing a test checks depends on the count, and tests of the count set their own); workers at
# the daemon's priority (make test's four pytest processes, at 0, would leave a worker at nice 10 a few percent
# of a core).
TEST_DEFAULTS: dict[str, dict[str, Any]] = {"promotion": {"bootstrap_resamples": 200}, "workers": {"nice": 0}}


class DaemonApi:
    """What tests ask of a running daemon, over its HTTP API and its SQLite file; shared by ``Daemon`` (a
    child process) and ``tests.inprocess.InProcessDaemon`` (a service in a thread). A subclass provides
    ``url``, ``assert_alive()`` and ``log_tail()``."""

    def __init__(self, root: Path, *, config: dict[str, dict[str, Any]] | None = None, name: str = "daemon") -> None:
        """The daemon's files under ``root`` (its models folder made); ``config``: sections over the defaults."""
        self.root = root
        self.models_root = root / "models"
        self.state_dir = root / "state"
        self.db_path = root / "eval.db"
        self.config_path = root / f"{name}.toml"
        given = config or {}
        self.extra = {**given, **{name: {**table, **given.get(name, {})} for name, table in TEST_DEFAULTS.items()}}
        self.port = 0
        self.models_root.mkdir(parents=True, exist_ok=True)
        self._http: httpx.Client | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def assert_alive(self) -> None:
        raise NotImplementedError

    def log_tail(self, n: int = 60) -> str:
        raise NotImplementedError

    @property
    def http(self) -> httpx.Client:
        """A keep-alive client on this daemon's URL, made anew when a restart changes the port.

        One client, not ``httpx.get`` per request: every new httpx client builds an SSL context (~35 ms of
        CPU, even for plain http), which the polling loops would pay several times a second."""
        if self._http is None or str(self._http.base_url).rstrip("/") != self.url:
            self.close_http()
            self._http = httpx.Client(base_url=self.url, timeout=30.0)
        return self._http

    def close_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def health(self) -> dict[str, Any]:
        return self.http.get("/healthz", timeout=10.0).json()

    def wait_workers_ready(self, timeout: float = WORKERS_READY_TIMEOUT_S, *, not_pid: int | None = None) -> dict[str, Any]:
        """Wait until /healthz reports ready workers (with a worker pid other than ``not_pid``)."""
        def ready() -> dict[str, Any] | None:
            h = self.health()
            pid = h.get("worker_info", {}).get("pid")
            if h.get("workers") == "ready" and pid and pid != not_pid:
                return h
            return None
        return self.wait_for(ready, timeout, "workers ready")

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.assert_alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.log_tail()}")
            time.sleep(interval)

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read the daemon's SQLite file directly (read-only; WAL allows it while the daemon writes)."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    # -- API helpers ---------------------------------------------------------------------------
    def submit_eval(self, **body: Any) -> dict[str, Any]:
        body.setdefault("imgsz", API_IMGSZ)
        r = self.http.post("/v1/vision/eval", json=body)
        assert r.status_code == 202, (r.status_code, r.text)
        return r.json()

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/vision/jobs/{job_id}", timeout=10.0)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def wait_job(self, job_id: str, statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
                 timeout: float = JOB_TIMEOUT_S, predicate: Callable[[dict[str, Any]], bool] | None = None
                 ) -> dict[str, Any]:
        """Poll a job until its status is one of ``statuses`` (and ``predicate`` holds)."""
        def done() -> dict[str, Any] | None:
            job = self.job(job_id)
            if job["status"] in statuses and (predicate is None or predicate(job)):
                return job
            return None
        return self.wait_for(done, timeout, f"job {job_id} to reach {statuses}")


class Daemon(DaemonApi):
    """One ``vision-evald`` child process on its own files and port (see module contract). ``started``
    counts the starts in this process (tests/conftest.py holds ``make test-fast`` to none)."""

    started = 0

    def __init__(self, root: Path, *, config: dict[str, dict[str, Any]] | None = None, name: str = "daemon") -> None:
        super().__init__(root, config=config, name=name)
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- configuration and lifecycle -----------------------------------------------------------
    def _sections(self) -> dict[str, dict[str, Any]]:
        sections: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "paths": {"models_root": str(self.models_root), "state_dir": str(self.state_dir),
                      "db_path": str(self.db_path)},
            "workers": {"count": 1, "device": "cpu"},
            "watch": {"enabled": False},  # the watcher would evaluate whatever we place in models/
        }
        for section, table in self.extra.items():
            sections.setdefault(section, {}).update(table)
        return sections

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_workers: bool = True) -> Daemon:
        """Start on a free port (retrying if another process grabbed it) and wait until it serves."""
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
        env["PYTHONUNBUFFERED"] = "1"
        Daemon.started += 1
        for _attempt in range(3):
            self.port = free_port()
            write_toml(self.config_path, self._sections())
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                [*vision_evald_command(), "--config", str(self.config_path)],
                cwd=str(REPO_ROOT), env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if self._wait_http(120.0):
                break
            self._log_file.close()
            if "address already in use" not in self.log().lower():
                raise AssertionError(f"daemon did not start (exit {self.proc.returncode}):\n{self.log_tail()}")
        else:
            raise AssertionError(f"daemon could not bind a port:\n{self.log_tail()}")
        if wait_workers:
            self.wait_workers_ready()
        return self

    def _wait_http(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                self.http.get("/healthz", timeout=2.0)
                return True
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"daemon did not answer /healthz within {timeout:.0f} s:\n{self.log_tail()}")

    def assert_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"daemon is not running (exit {code}):\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    @contextmanager
    def paused(self) -> Iterator[int]:
        """Inside, the daemon's worker process is stopped (SIGSTOP), so the task it holds cannot finish and
        the jobs behind it stay queued, however loaded the machine is; SIGCONT on leaving (a no-op if the
        worker was killed meanwhile, e.g. by a cancel). Yields the worker's pid."""
        pid = self.health()["worker_info"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            yield pid
        finally:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def kill9(self) -> list[psutil.Process]:
        """SIGKILL the daemon process only (not its group); returns its descendants as they were."""
        assert self.proc is not None
        children = self.descendants()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self._log_file is not None:
            self._log_file.close()
        return children

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; also kill any descendant left behind."""
        if self.proc is None:
            return
        children = self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        for child in children:  # only processes this daemon started
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.close_http()
        if self._log_file is not None:
            self._log_file.close()

    # -- logs and files ------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])



def running_with_progress(job: dict[str, Any]) -> bool:
    """A job that is running and has reported progress (its evaluation is under way)."""
    return job["status"] == "running" and job["progress"] > 0


def process_gone(proc: psutil.Process) -> bool:
    """Whether a process has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def make_dataset(root: Path, n_val: int, seed: int) -> Path:
    from tests.fixtures.synth import make_dataset as _make

    return _make(root, n_val=n_val, seed=seed)
