"""Ray, said out loud, without a Ray head (none is started here):

- a daemon started while its Ray head is down answers /healthz 503 naming the configured address (not
  the node address Ray rewrites it to), logs it, retries, and stops cleanly on SIGTERM;
- Ray's raw output (its C++ core's lines on stderr, its driver's prints on stdout) reaches the log
  through the daemon's logger, in text and in JSON mode (``daemon.jobs.ray_output``);
- the relay's parsing of Ray's line prefix.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.jobs.ray_output import parse_line
from tests.daemon_fixtures import REPO_ROOT, free_port, vision_evald_command, write_toml

if importlib.util.find_spec("ray") is None:  # looked up, not imported: importing ray costs every collection ~0.6 s
    pytest.skip("ray is not installed", allow_module_level=True)

TEXT_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
RAY_C_LINE = re.compile(r"rpc_client\.h:\d+: Failed to connect")  # what Ray's C++ core writes to stderr

# A process that logs like the daemon (configure_logging) with the relay on, prints a line, then asks Ray
# to join a head that is not there: Ray's C++ core complains on stderr within seconds.
RELAY_SCRIPT = """
import logging, sys, threading, time
from daemon.app.logs import configure_logging
from daemon.jobs.ray_head import prepare_environment, route_ray_logging
from daemon.jobs.ray_output import RawOutput
configure_logging("INFO", sys.argv[1], sys.stderr)
prepare_environment(local=False, give_up_after_s=300)
RawOutput().start()
import ray
route_ray_logging()
print("printed on stdout", flush=True)
threading.Thread(target=ray.init, kwargs={"address": sys.argv[2], "log_to_driver": False}, daemon=True).start()
time.sleep(600)
"""


def _closed_address() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there (a moment ago nothing did)


def _read_until(proc: subprocess.Popen[str], found: Any, timeout: float) -> list[str]:
    """Lines of ``proc``'s stderr until ``found(line)`` is true; fails after ``timeout`` seconds."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if found(lines[-1]):
            return lines
    raise AssertionError(f"not seen within {timeout:.0f} s (exit {proc.poll()}):\n" + "\n".join(lines[-40:]))


def test_rays_raw_output_goes_through_our_logger() -> None:
    """In text and in JSON mode (two processes side by side: each waits seconds for Ray's complaint)."""
    procs = {fmt: subprocess.Popen([sys.executable, "-c", RELAY_SCRIPT, fmt, _closed_address()], cwd=REPO_ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for fmt in ("text", "json")}
    try:
        lines = {fmt: _read_until(proc, lambda line: bool(RAY_C_LINE.search(line)), 120.0)
                 for fmt, proc in procs.items()}
    finally:
        outs = {}
        for fmt, proc in procs.items():
            proc.kill()
            outs[fmt] = proc.communicate(timeout=30)[0]
    assert outs == {"text": "", "json": ""}  # Ray's (and anyone's) stdout became log records too
    assert all(TEXT_RECORD.match(line) for line in lines["text"]), lines["text"]
    text_records = [{"logger": line.split(" ", 4)[3].rstrip(":"), "level": line.split(" ", 4)[2],
                     "message": line.split(": ", 1)[1]} for line in lines["text"]]
    json_records = [json.loads(line) for line in lines["json"]]  # every line is one JSON object
    for records in (text_records, json_records):
        c_line = next(r for r in records if RAY_C_LINE.search(r["message"]))
        assert (c_line["logger"], c_line["level"]) == ("ray.stderr", "WARNING")  # Ray's "W" prefix, dropped
        assert not c_line["message"].startswith("[")
        assert any(r["logger"] == "ray.stdout" and r["message"] == "printed on stdout" for r in records)


def test_starting_with_the_head_down_names_the_configured_address(tmp_path: Path) -> None:
    address = _closed_address()
    port = free_port()
    config = write_toml(tmp_path / "daemon.toml", {
        "server": {"host": "127.0.0.1", "port": port},
        "paths": {"models_root": str(tmp_path / "models"), "state_dir": str(tmp_path / "state"),
                  "db_path": str(tmp_path / "eval.db")},
        "workers": {"backend": "ray", "ray_address": address},
        "watch": {"enabled": False},
    })
    proc = subprocess.Popen([*vision_evald_command(), "--config", str(config), "--log-format", "json"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _read_until(proc, lambda line: address in line, 120.0)
        health = _wait_for_503(f"http://127.0.0.1:{port}/healthz", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in [*lines, *err.splitlines()]]  # every line is one JSON object
    said = next(r for r in records if address in r["message"])
    assert said["logger"] == "daemon.jobs.ray_backend" and said["level"] == "WARNING"
    assert f'the Ray head at "{address}" ([workers] ray_address' in said["message"]
    assert "retrying every" in said["message"]
    assert health["ok"] is False and health["workers"] == "starting"
    assert f'"{address}"' in health["reason"] and "cannot be reached" in health["reason"], health
    assert out == ""


def _wait_for_503(url: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60.0
    with httpx.Client(timeout=5.0) as client:  # one client: each new one builds an SSL context (~50 ms of CPU)
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the daemon exited ({proc.returncode})"
            try:
                r = client.get(url)
                if r.status_code == 503 and "reason" in r.json():
                    return dict(r.json())
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise AssertionError("/healthz never answered 503 with a reason")


def test_the_relay_reads_rays_prefix() -> None:
    line = "[2026-12-07 05:41:39,415 E 31830 32156] rpc_client.h:204: Failed to connect to GCS within 60 seconds."
    assert parse_line(line + "\n", logging.INFO) == (logging.ERROR, "rpc_client.h:204: Failed to connect to GCS "
                                                                     "within 60 seconds.")
    raylet = "\x1b[33m(raylet)\x1b[0m [2026-12-07 05:51:43,463 I 6036 6036] worker_pool.cc:564: Started"
    assert parse_line(raylet, logging.WARNING) == (logging.INFO, "(raylet) worker_pool.cc:564: Started")
    assert parse_line("    @     0x7f254d8c2f36  (unknown)  epoll_wait", logging.ERROR)[0] == logging.ERROR
    assert parse_line("*** SIGTERM received at time=1796623927 on cpu 1 ***", logging.INFO)[0] == logging.WARNING
