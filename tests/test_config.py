"""vocab/config.py and ``vision-evald --validate-config``: defaults, strictness, env overrides, exposure."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from tests.daemon_fixtures import REPO_ROOT, vision_evald_command
from vocab.config import Config, load_config, parse_config
from vocab.errors import ConfigError


def test_defaults() -> None:
    cfg = load_config(None, environ={})
    assert isinstance(cfg, Config)
    assert cfg.server.port == 11540
    assert cfg.server.host == "127.0.0.1"
    assert cfg.server.auth_token == ""
    assert cfg.models_root == Path("~/.llamafarm/models/vision").expanduser()
    assert cfg.models_root.is_absolute()
    assert cfg.db_path == cfg.models_root / "eval.db"
    assert cfg.eval.imgsz == 0 and cfg.eval.batch == 16  # 0: per task (640 for detection: the spec's)


def test_db_path_follows_models_root_unless_set(tmp_path: Path) -> None:
    cfg = parse_config({"paths": {"models_root": str(tmp_path / "m")}}, environ={})
    assert cfg.db_path == tmp_path / "m" / "eval.db"
    cfg = parse_config({"paths": {"models_root": str(tmp_path / "m"), "db_path": str(tmp_path / "x.db")}}, environ={})
    assert cfg.db_path == tmp_path / "x.db"


def test_a_toml_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 12000\n[jobs]\nmax_attempts = 3\neval_timeout_s = 60\n'
                    '[paths]\nallowed_roots = ["/srv", "/data"]\n')
    cfg = load_config(path, environ={})
    assert cfg.server.port == 12000
    assert cfg.jobs.max_attempts == 3
    assert cfg.jobs.eval_timeout_s == 60.0 and isinstance(cfg.jobs.eval_timeout_s, float)  # int widened
    assert cfg.allowed_roots == [Path("/srv"), Path("/data")]


@pytest.mark.parametrize("raw, message", [
    ({"sever": {"port": 1}}, "unknown section"),
    ({"server": {"prot": 1}}, "unknown key"),
    ({"server": {"port": 1, "hots": "x"}}, "hots"),
    ({"watch": {"enable": False}}, "unknown key"),
    ({"server": []}, "must be a table"),
])
def test_unknown_sections_and_keys_are_errors(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, environ={})


@pytest.mark.parametrize("raw", [
    {"server": {"port": "11540"}},
    {"server": {"port": True}},
    {"server": {"port": 1.5}},
    {"server": {"host": 127}},
    {"server": {"allow_non_loopback": "yes"}},
    {"server": {"allow_non_loopback": 1}},
    {"jobs": {"eval_timeout_s": "soon"}},
    {"jobs": {"eval_timeout_s": False}},
    {"paths": {"allowed_roots": "/"}},
    {"paths": {"allowed_roots": [1]}},
    {"paths": {"models_root": ["/a"]}},
])
def test_type_errors(raw: dict) -> None:
    with pytest.raises(ConfigError, match="must be"):
        parse_config(raw, environ={})


@pytest.mark.parametrize("raw", [
    {"server": {"port": 0}},  # a fixed port only: systemd and clients must know it
    {"server": {"port": 65536}},
    {"workers": {"count": 0}},
    {"workers": {"nice": -1}},  # a priority above the daemon's would take the event loop's cores
    {"workers": {"nice": 20}},
    {"jobs": {"max_attempts": 0}},
    {"eval": {"imgsz": 319}},
    {"eval": {"batch": 257}},
    {"paths": {"allowed_roots": ["relative/dir"]}},
])
def test_out_of_range_values_are_errors(raw: dict) -> None:
    with pytest.raises(ConfigError):
        parse_config(raw, environ={})


def test_environment_overrides() -> None:
    env = {
        "VISION_EVALD_SERVER_PORT": "11541",
        "VISION_EVALD_WATCH_ENABLED": "False",
        "VISION_EVALD_PATHS_MODELS_ROOT": "/srv/models",
        "VISION_EVALD_JOBS_MAX_ATTEMPTS": "3",
        "VISION_EVALD_JOBS_EVAL_TIMEOUT_S": "12.5",
        "VISION_EVALD_PATHS_ALLOWED_ROOTS": '["/srv", "/data"]',
        "UNRELATED": "ignored",
    }
    cfg = parse_config({"server": {"port": 12000}, "jobs": {"max_attempts": 5}}, environ=env)
    assert cfg.server.port == 11541  # the environment beats the file
    assert cfg.watch.enabled is False
    assert cfg.models_root == Path("/srv/models") and cfg.db_path == Path("/srv/models/eval.db")
    assert cfg.jobs.max_attempts == 3
    assert cfg.jobs.eval_timeout_s == 12.5
    assert cfg.paths.allowed_roots == ("/srv", "/data")


def test_environment_overrides_are_read_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_EVALD_SERVER_PORT", "11999")
    assert load_config(None).server.port == 11999


@pytest.mark.parametrize("env, message", [
    ({"VISION_EVALD_SERVR_PORT": "1"}, "names no config section"),
    ({"VISION_EVALD_SERVER_PROT": "1"}, "no key"),
    ({"VISION_EVALD_SERVER_PORT": "eleven"}, "not a valid value"),
    ({"VISION_EVALD_SERVER_PORT": "\"11540\""}, "must be an integer"),
    ({"VISION_EVALD_WATCH_ENABLED": "maybe"}, "not a valid value"),
])
def test_bad_environment_overrides_are_errors(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({}, environ=env)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_nothing(host: str) -> None:
    assert parse_config({"server": {"host": host}}, environ={}).server.host == host


@pytest.mark.parametrize("server", [
    {"host": "0.0.0.0"},
    {"host": "192.168.1.10"},
    {"host": "::"},
    {"host": "example.org"},
    {"host": "0.0.0.0", "allow_non_loopback": True},  # no token
    {"host": "0.0.0.0", "auth_token": "s3cret"},  # not allowed explicitly
])
def test_non_loopback_host_is_refused_without_opt_in_and_token(server: dict) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        parse_config({"server": server}, environ={})


def test_non_loopback_host_with_opt_in_and_token_is_accepted() -> None:
    cfg = parse_config({"server": {"host": "0.0.0.0", "allow_non_loopback": True, "auth_token": "s3cret"}},
                       environ={})
    assert cfg.server.host == "0.0.0.0" and cfg.server.auth_token == "s3cret"


def test_config_is_frozen() -> None:
    cfg = load_config(None, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server.port = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- vision-evald --validate-config


def _validate(path: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    env.update(extra_env or {})
    return subprocess.run(
        [*vision_evald_command(), "--validate-config", str(path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


BAD_CONFIGS = {
    "unknown_key.toml": "[server]\nprot = 1\n",
    "unknown_section.toml": "[sever]\nport = 1\n",
    "bad_type.toml": '[server]\nport = "x"\n',
    "not_toml.toml": "[server\nport = 1\n",
    "exposed.toml": '[server]\nhost = "0.0.0.0"\n',
}
GOOD_CONFIG = '[server]\nport = 11600\n[paths]\nmodels_root = "/srv/models"\n[watch]\nenabled = false\n'


def test_every_kind_of_bad_config_is_a_config_error(tmp_path: Path) -> None:
    """What ``vision-evald`` turns into exit 2 and one "configuration error" line (checked on the command
    below): every kind of mistake is a ConfigError, never another exception."""
    for name, text in BAD_CONFIGS.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError):
            load_config(path, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})
    good = tmp_path / "good.toml"
    good.write_text(GOOD_CONFIG)
    assert load_config(good, environ={"VISION_EVALD_SERVER_PORT": "11601"}).server.port == 11601
    with pytest.raises(ConfigError, match="port"):  # environment overrides are validated too
        load_config(good, environ={"VISION_EVALD_SERVER_PORT": "0"})


def test_validate_config_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD_CONFIG)
    r = _validate(good)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout

    bad = tmp_path / "bad_type.toml"
    bad.write_text(BAD_CONFIGS["bad_type.toml"])
    r = _validate(bad)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "configuration error" in r.stderr and "Traceback" not in r.stderr, r.stderr

    # The command reads the environment: its overrides are part of what is validated.
    r = _validate(good, {"VISION_EVALD_SERVER_PORT": "0"})
    assert r.returncode == 2 and "port" in r.stderr


def test_daemon_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nprot = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    r = subprocess.run([*vision_evald_command(), "--config", str(path)], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "configuration error" in r.stderr

