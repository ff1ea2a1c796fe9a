"""The ``[mlflow]`` section of the daemon's configuration.

An empty ``tracking_uri`` (the default) switches MLflow off: nothing is
enqueued and mlflow is never imported. ``daemon.config`` parses the section
like any other (typed keys, unknown keys refused, ``VISION_EVALD_MLFLOW_<KEY>``
environment overrides) and calls ``check`` from its validation.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from vocab.errors import ConfigError

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
