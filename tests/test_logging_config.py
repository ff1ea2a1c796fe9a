"""``vision-evald``'s logs (text, JSON lines, no duplicate time under journald), its config file
discovery and the XDG state folder: in-process on tmp_path files and environment variables, plus the
installed command run to the point where it reads its config (no daemon, no torch)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.app.logs import configure_logging
from daemon.main import config_path
from vocab import paths
from vocab.config import Config, parse_config
from vocab.errors import ConfigError
from vocab.paths import config_candidates, daemon_state_dir, discover_config

TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# --------------------------------------------------------------------------- log formats


def test_json_format_is_one_object_per_line(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream, environ={})
    log = logging.getLogger("vision_evald.test")
    log.info("job %s queued", "abc")
    log.debug("not shown at INFO")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed: %s", "ünïcode")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # the traceback stays inside its line
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "job abc queued" and first["level"] == "INFO"
    assert first["logger"] == "vision_evald.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"]), first["time"]
    assert second["level"] == "ERROR" and second["message"] == "it failed: ünïcode"
    assert "ValueError: bad\nthing" in second["exception"] and "Traceback" in second["exception"]


def test_json_lines_carry_the_bound_fields_and_a_sequence_number(root_logging: None) -> None:
    from vocab import log_context

    stream = io.StringIO()
    configure_logging("INFO", "json", stream, environ={})
    log = logging.getLogger("vision_evald.test")
    log.info("before")
    with log_context.bind(request_id="r-1"):
        with log_context.bind(job_id="j-2", model="my-detector"):
            log.info("inside")
        log.info("request only")
    log.info("explicit", extra={"model": "other"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in lines] == ["before", "inside", "request only", "explicit"]
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines) and len({e["seq"] for e in lines}) == 4
    assert "request_id" not in lines[0] and "job_id" not in lines[0]
    assert (lines[1]["request_id"], lines[1]["job_id"], lines[1]["model"]) == ("r-1", "j-2", "my-detector")
    assert lines[2]["request_id"] == "r-1" and "job_id" not in lines[2]
    assert lines[3]["model"] == "other"


def test_apschedulers_per_run_lines_are_debug(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream, environ={})
    runs = logging.getLogger("apscheduler.executors.default")
    runs.info('Running job "rescan" (scheduled at ...)')
    logging.getLogger("apscheduler.scheduler").info("Scheduler started")  # not per run: kept
    runs.warning("Run time of job was missed")  # warnings stay warnings
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["level"]) for e in lines] == [
        ("apscheduler.scheduler", "INFO"), ("apscheduler.executors.default", "WARNING")]
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream, environ={})
    runs.info('Running job "rescan"')
    assert json.loads(stream.getvalue())["level"] == "DEBUG"


def test_port_and_host_flags_stand_for_their_config_keys(tmp_path: Path) -> None:
    from daemon.main import flag_overrides, parse_args
    from vocab.config import load_config

    config = tmp_path / "c.toml"
    config.write_text("[server]\nport = 11600\n")
    args = parse_args(["--port", "11777", "--host", "127.0.0.2"])
    cfg = load_config(config, flag_overrides(args))
    assert (cfg.server.port, cfg.server.host) == (11777, "127.0.0.2")  # a flag beats the file
    assert load_config(config, flag_overrides(parse_args([]))).server.port == 11600
    with pytest.raises(ConfigError, match="not a loopback address"):  # the file's checks apply to a flag
        load_config(config, flag_overrides(parse_args(["--host", "0.0.0.0"])))


def test_text_format_leaves_the_time_to_the_journal_only_when_stderr_is_the_journal(
        root_logging: None, tmp_path: Path) -> None:
    def first_line(environ: dict[str, str]) -> str:
        target = tmp_path / "stderr.log"
        with target.open("w", encoding="utf-8") as stream:
            configure_logging("INFO", "text", stream, environ=environ)
            logging.getLogger("vision_evald.test").info("hello")
            st = os.fstat(stream.fileno())
            journal[0] = f"{st.st_dev}:{st.st_ino}"
        return target.read_text(encoding="utf-8").splitlines()[0]

    journal = [""]
    assert re.fullmatch(rf"{TIMESTAMP} INFO vision_evald.test: hello", first_line({}))
    # $JOURNAL_STREAM naming this very file (device:inode): the journal stamps lines, we do not.
    assert first_line({"JOURNAL_STREAM": journal[0]}) == "INFO vision_evald.test: hello"
    # Inherited from a systemd service but stderr is elsewhere now: keep the time.
    assert re.fullmatch(rf"{TIMESTAMP} INFO .*", first_line({"JOURNAL_STREAM": "1:2"}))


# --------------------------------------------------------------------------- config discovery


def test_discovery_prefers_xdg_config_home_then_etc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "vision-evald" / "config.toml"
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", etc)
    xdg = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(xdg)}
    user = xdg / "vision-evald" / "config.toml"
    assert config_candidates(env) == [user, etc]
    assert discover_config(env) is None
    etc.parent.mkdir(parents=True)
    etc.write_text("[server]\nport = 11601\n")
    assert discover_config(env) == etc
    user.parent.mkdir(parents=True)
    user.write_text("[server]\nport = 11602\n")
    assert discover_config(env) == user
    # A relative $XDG_CONFIG_HOME is ignored (XDG spec): ~/.config is used instead.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_candidates({"XDG_CONFIG_HOME": "rel/dir"})[0] == tmp_path / "home/.config/vision-evald/config.toml"
    assert config_candidates({})[0] == tmp_path / "home/.config/vision-evald/config.toml"


def test_the_daemon_logs_which_config_it_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", tmp_path / "etc.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    caplog.set_level(logging.INFO, logger="daemon.main")
    assert config_path(None) is None
    assert "no config file at" in caplog.text and str(tmp_path / "etc.toml") in caplog.text
    found = tmp_path / "xdg" / "vision-evald" / "config.toml"
    found.parent.mkdir(parents=True)
    found.write_text("")
    caplog.clear()
    assert config_path(None) == found
    assert f"config file: {found} (found without --config)" in caplog.text
    given = tmp_path / "given.toml"
    assert config_path(given) == given  # --config wins over anything discovered


def test_vision_evald_reads_the_discovered_file_and_logs_json(tmp_path: Path) -> None:
    """The installed command with $XDG_CONFIG_HOME: it reads that file (here one with a bad key, so it
    stops with exit 2 before serving), and with --log-format json even its exit message is a JSON line."""
    config = tmp_path / "xdg" / "vision-evald" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[server]\nport = 11603\nno_such_key = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    script = Path(sys.executable).parent / "vision-evald"
    proc = subprocess.run([str(script), "--log-format", "json"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2, proc
    first, *_, last = (json.loads(line) for line in proc.stderr.splitlines())  # every line is JSON
    assert first["message"] == f"config file: {config} (found without --config)", first
    assert last["level"] == "CRITICAL" and "configuration error" in last["message"]
    assert "no_such_key" in last["message"]


def test_vision_evald_serves_on_the_port_flag(tmp_path: Path) -> None:
    """The installed command with --port: the flag wins over the config file's port, and it serves there
    (its /healthz answers while its worker is still starting; then SIGTERM stops it cleanly)."""
    import signal

    import httpx

    from tests.daemon_fixtures import free_port

    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f"[server]\nport = {free_port()}\n[paths]\nmodels_root = '{tmp_path / 'models'}'\n"
                      f"state_dir = '{tmp_path / 'state'}'\ndb_path = '{tmp_path / 'eval.db'}'\n[watch]\nenabled = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    script = Path(sys.executable).parent / "vision-evald"
    proc = subprocess.Popen([str(script), "--config", str(config), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as client:  # one client: each new one builds an SSL context (~50 ms of CPU)
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                try:
                    r = client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        assert r.status_code in (200, 503) and r.json()["database"] == "ok", r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


# --------------------------------------------------------------------------- state folder


def test_state_dir_follows_xdg_state_home_unless_configured(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Config().state_dir == tmp_path / "state" / "vision-evald"
    assert daemon_state_dir({"XDG_STATE_HOME": "relative"}) == Path.home() / ".local/state/vision-evald"
    explicit = parse_config({"paths": {"state_dir": str(tmp_path / "mine")}}, environ={})
    assert explicit.state_dir == tmp_path / "mine"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Config().state_dir == tmp_path / "home" / ".local" / "state" / "vision-evald"
