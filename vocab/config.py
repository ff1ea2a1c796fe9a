"""The daemon's configuration: a TOML file, environment overrides, typed and frozen.

Every key has a default (``config.example.toml`` documents them all); an
unknown section or key is an error, so a typo never silently keeps a
default. ``VISION_EVALD_<SECTION>_<KEY>`` overrides a key from the
environment, e.g. ``VISION_EVALD_SERVER_PORT=11541``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vocab.errors import ConfigError, InvalidRequest
from vocab.files import check_model_name
from vocab.hosts import parse_origin
from vocab.paths import daemon_state_dir
from vocab.tasks import IMGSZ_BOUNDS, TASKS, fits_task
from vocab.terms import (
    BATCH_MAX,
    BATCH_MIN,
    DEFAULT_BATCH,
    EXPORT_PARITY_MODES,
    gate_config_default,
)

ENV_PREFIX = "VISION_EVALD_"


def toml_literal(value: Any) -> str:
    """A config value as it is written in the TOML file (what the docs show as a default, and what tests
    write into a daemon's config); TypeError for a value no config key holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 11540
    auth_token: str = ""  # empty: no authentication (loopback only)
    max_body_bytes: int = 64 * 1024
    allow_non_loopback: bool = False  # binding elsewhere also requires auth_token
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback and `host`
    allowed_origins: tuple[str, ...] = ()  # browser origins accepted besides the daemon's own
    upstream_url: str = ""  # LlamaFarm's runtime: /v1/ requests we do not route go there; empty: off


@dataclass(frozen=True)
class PathsConfig:
    models_root: str = "~/.llamafarm/models/vision"
    db_path: str = ""  # empty: <models_root>/eval.db
    state_dir: str = ""  # empty: $XDG_STATE_HOME/vision-evald, default ~/.local/state/vision-evald
    allowed_roots: tuple[str, ...] = ("/",)


@dataclass(frozen=True)
class JobsConfig:
    max_queued: int = 100
    max_attempts: int = 2
    max_interruptions: int = 10  # daemon deaths under one job before it fails (a crash loop)
    eval_timeout_s: float = 3600.0
    compare_timeout_s: float = 7200.0
    train_timeout_s: float = 86400.0
    retain_finished_days: float = 30.0


@dataclass(frozen=True)
class WorkersConfig:
    count: int = 1
    device: str = "auto"
    torch_threads: int = 0  # 0: OMP_NUM_THREADS when set, else cores / count
    nice: int = 10  # local workers' CPU priority steps below the daemon's (0-19): its event loop comes first
    backend: str = "local"  # or "ray": one actor per worker on a Ray cluster
    ray_address: str = ""  # empty: start a local Ray head; "auto" or host:port: join that cluster
    gpus_per_worker: float = -1.0  # < 0: 1 where the cluster has GPUs, else 0
    ray_local_gpus: int = -1  # GPUs a local head declares; < 0: what Ray detects
    ray_head_grace_s: float = 30.0  # the Ray head lost this long: the daemon stops (exit status 3)
    ray_actor_silence_s: float = 20.0  # an actor answering no progress poll this long is lost: job retried
    require_gpu: bool = False  # true: /healthz fails while workers run on the CPU


@dataclass(frozen=True)
class EvalConfig:
    imgsz: int = 0  # 0: per task (daemon.jobs.eval_settings): 640, or a classifier's own training size
    batch: int = DEFAULT_BATCH
    split: str = "val"  # the dataset split evaluated by default: val, test or train


@dataclass(frozen=True)
class WatchConfig:
    enabled: bool = True
    settle_seconds: float = 2.0
    rescan_interval_s: float = 60.0
    default_dataset: str = ""


@dataclass(frozen=True)
class PromotionConfig:
    baseline: str = "current"  # or "dataset_best"
    # The gates: their defaults are vocab.terms' (< 0: a gate off).
    min_delta: float = gate_config_default("min_delta")
    require_significant: bool = gate_config_default("require_significant")  # false: the spec's literal rule
    max_class_regression: float = gate_config_default("max_class_regression")
    min_class_support: int = gate_config_default("min_class_support")
    max_size_recall_regression: float = gate_config_default("max_size_recall_regression")
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0
    export_parity: str = "auto"  # "auto" (check an export beside the candidate), "required" or "off"
    max_export_delta: float = 0.005
    max_export_class_delta: float = 0.02
    export_wait_s: float = 30.0  # a candidate younger than this waits for its export to appear


@dataclass(frozen=True)
class SchedulerConfig:
    wal_checkpoint_interval_s: float = 300.0
    prune_interval_s: float = 3600.0


# MLflow's own rules: an alias is word characters and '-', at most 255 of them, neither ``latest`` nor
# ``v<digits>`` (those name versions); a registered model's name holds no '/' or ':'.
_ALIAS_RE = re.compile(r"^[\w-]{1,255}$")
_RESERVED_ALIAS_RE = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
# The prefix also stays out of the registry's filter strings, which quote names with '.
_PREFIX_RE = re.compile(r"^[\w. -]*$")


@dataclass(frozen=True)
class MlflowConfig:
    """Where evaluations, comparisons and promotion decisions are reported (see module contract).

    - ``tracking_uri``: the MLflow tracking server's URL, e.g. ``http://127.0.0.1:5000``; empty: off.
    - ``experiment``: the experiment every run is logged in (created when missing).
    - ``registered_model_prefix``: a model ``m`` is registered as ``<prefix>m``.
    - ``alias``: the registry alias that follows ``current.pt``.
    """

    tracking_uri: str = ""
    experiment: str = "vision-evald"
    registered_model_prefix: str = ""
    alias: str = "champion"

    @property
    def enabled(self) -> bool:
        return bool(self.tracking_uri)

    def registered_name(self, model_name: str) -> str:
        """The registered model that holds the versions of ``model_name``."""
        return f"{self.registered_model_prefix}{model_name}"

    def check(self) -> None:
        """ConfigError naming the key whose value MLflow would refuse (nothing to check when off)."""
        if not self.enabled:
            return
        url = urlsplit(self.tracking_uri)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"[mlflow] tracking_uri must be an MLflow tracking server's http(s) URL such as "
                              f"http://127.0.0.1:5000, got {self.tracking_uri!r}")
        if importlib.util.find_spec("mlflow") is None:  # found, not imported
            raise ConfigError("[mlflow] tracking_uri is set but mlflow is not installed: "
                              "pip install 'vision-evald[mlflow]'")
        if not self.experiment.strip():
            raise ConfigError("[mlflow] experiment must not be empty")
        if not _PREFIX_RE.match(self.registered_model_prefix):
            raise ConfigError(f"[mlflow] registered_model_prefix may hold letters, digits, '_', '-', '.' and spaces, "
                              f"got {self.registered_model_prefix!r}")
        if not _ALIAS_RE.match(self.alias) or _RESERVED_ALIAS_RE.match(self.alias):
            raise ConfigError(f"[mlflow] alias must be 1-255 letters, digits, '_' or '-', and neither 'latest' nor "
                              f"v<number> (MLflow reserves them), got {self.alias!r}")


@dataclass(frozen=True)
class ModelConfig:
    dataset: str = ""
    imgsz: int = 0  # 0: not set ([eval] imgsz applies)
    batch: int = 0  # 0: not set ([eval] batch applies)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    models: dict[str, ModelConfig] = field(default_factory=dict)

    @property
    def models_root(self) -> Path:
        return Path(self.paths.models_root).expanduser()

    @property
    def db_path(self) -> Path:
        return Path(self.paths.db_path).expanduser() if self.paths.db_path else self.models_root / "eval.db"

    @property
    def state_dir(self) -> Path:
        return Path(self.paths.state_dir).expanduser() if self.paths.state_dir else daemon_state_dir()

    @property
    def converted_dir(self) -> Path:
        """Where COCO JSON datasets are converted once, for every job of this daemon."""
        return self.state_dir / "converted"

    @property
    def allowed_roots(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.paths.allowed_roots]


_SECTION_TYPES = {
    "server": ServerConfig, "paths": PathsConfig, "jobs": JobsConfig, "workers": WorkersConfig,
    "eval": EvalConfig, "watch": WatchConfig, "promotion": PromotionConfig, "scheduler": SchedulerConfig,
    "mlflow": MlflowConfig,
}


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"[{section}] {key}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where} must be a string, got {value!r}")


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: _coerce(name, k, v, getattr(defaults, k)) for k, v in raw.items()}
    return dataclasses.replace(defaults, **values)


def _env_overrides(raw: dict[str, Any], environ: dict[str, str]) -> None:
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX):].lower()
        section = next((s for s in _SECTION_TYPES if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"environment variable {var} names no config section")
        key = rest[len(section) + 1:]
        default = getattr(_SECTION_TYPES[section](), key, None)
        if default is None and key not in {f.name for f in dataclasses.fields(_SECTION_TYPES[section])}:
            raise ConfigError(f"environment variable {var}: no key {key!r} in [{section}]")
        if isinstance(default, str):
            value: Any = text
        else:
            try:
                value = json.loads(text.lower() if isinstance(default, bool) else text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"environment variable {var}={text!r} is not a valid value") from exc
        raw.setdefault(section, {})[key] = value


def _validate(cfg: Config) -> None:
    cfg.mlflow.check()
    s = cfg.server
    if not 0 < s.port < 65536:
        raise ConfigError(f"[server] port must be 1-65535, got {s.port}")
    try:
        loopback = s.host == "localhost" or ipaddress.ip_address(s.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not (s.allow_non_loopback and s.auth_token):
        raise ConfigError(
            f"[server] host {s.host!r} is not a loopback address: set allow_non_loopback = true "
            "and an auth_token to serve beyond this machine"
        )
    for origin in s.allowed_origins:
        if parse_origin(origin) is None:
            raise ConfigError(f"[server] allowed_origins entries must be origins like \"http://host:port\", "
                              f"got {origin!r}")
    if s.upstream_url:
        url = urlsplit(s.upstream_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ConfigError(f"[server] upstream_url must be an http(s)://host:port URL (LlamaFarm's runtime, "
                              f"e.g. http://127.0.0.1:11541), got {s.upstream_url!r}")
    if cfg.workers.count < 1:
        raise ConfigError("[workers] count must be at least 1")
    if not 0 <= cfg.workers.nice <= 19:
        raise ConfigError(f"[workers] nice must be 0-19, got {cfg.workers.nice}")
    if cfg.workers.backend not in ("local", "ray"):
        raise ConfigError(f"[workers] backend must be \"local\" or \"ray\", got {cfg.workers.backend!r}")
    if cfg.workers.ray_head_grace_s < 0 or cfg.workers.ray_actor_silence_s <= 0:
        raise ConfigError("[workers] ray_head_grace_s must be >= 0 and ray_actor_silence_s > 0")
    if cfg.jobs.max_queued < 1 or cfg.jobs.max_attempts < 1 or cfg.jobs.max_interruptions < 1:
        raise ConfigError("[jobs] max_queued, max_attempts and max_interruptions must be at least 1")
    if cfg.promotion.baseline not in ("current", "dataset_best"):
        raise ConfigError("[promotion] baseline must be \"current\" or \"dataset_best\"")
    if cfg.eval.split not in ("val", "test", "train"):
        raise ConfigError("[eval] split must be \"val\", \"test\" or \"train\"")
    if cfg.promotion.export_parity not in EXPORT_PARITY_MODES:
        raise ConfigError(f"[promotion] export_parity must be one of {', '.join(map(repr, EXPORT_PARITY_MODES))}")
    if cfg.promotion.max_export_delta < 0 or cfg.promotion.max_export_class_delta < 0:
        raise ConfigError("[promotion] max_export_delta and max_export_class_delta must be >= 0")
    for where, imgsz, batch, batch_unset in (("[eval]", cfg.eval.imgsz, cfg.eval.batch, False),
                                             *((f"[models.{n}]", m.imgsz, m.batch, True) for n, m in cfg.models.items())):
        if not (imgsz == 0 or any(fits_task(imgsz, t) for t in TASKS)) or not (
                (batch_unset and batch == 0) or BATCH_MIN <= batch <= BATCH_MAX):
            raise ConfigError(f"{where} imgsz must be 0 (per task) or a size some task accepts ({IMGSZ_BOUNDS}; "
                              f"each task's own bounds apply when it runs) and batch {BATCH_MIN}-{BATCH_MAX}"
                              + (" or 0 (not set)" if batch_unset else ""))
    if cfg.watch.settle_seconds < 0 or cfg.watch.rescan_interval_s <= 0:
        raise ConfigError("[watch] settle_seconds must be >= 0 and rescan_interval_s > 0")
    for root in cfg.paths.allowed_roots:
        if not Path(root).expanduser().is_absolute():
            raise ConfigError(f"[paths] allowed_roots entries must be absolute paths, got {root!r}")


def parse_config(raw: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    """Build a Config from a parsed TOML mapping plus environment overrides."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    _env_overrides(raw, dict(os.environ) if environ is None else environ)
    unknown = sorted(set(raw) - set(_SECTION_TYPES) - {"models"})
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(unknown)}; known: {', '.join([*_SECTION_TYPES, 'models'])}")
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTION_TYPES.items()}
    models: dict[str, ModelConfig] = {}
    raw_models = raw.get("models", {})
    if not isinstance(raw_models, dict):
        raise ConfigError("[models] must be a table of [models.<name>] tables")
    for name, table in raw_models.items():
        try:
            check_model_name(name)
        except InvalidRequest as exc:
            raise ConfigError(f"[models.{name}]: {exc.detail}") from exc
        models[name] = _section(f"models.{name}", ModelConfig, table)
    cfg = Config(**sections, models=models)
    _validate(cfg)
    return cfg


def load_config(path: Path | None, environ: dict[str, str] | None = None) -> Config:
    """Read a TOML file (or none: all defaults) and apply environment overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except (OSError, UnicodeDecodeError) as exc:  # unreadable (permissions, a folder, not UTF-8)
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return parse_config(raw, environ)
