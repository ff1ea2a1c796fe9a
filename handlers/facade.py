"""What the HTTP layer needs from the daemon, declared here: the ``Facade`` protocol and its value types.

Handlers talk to one object of this shape (``handlers.context.service``) and
to nothing else of the daemon: they never see its config, its database or
its sub-services, and this package imports nothing from ``daemon``. The
daemon's composition root builds the implementation (``daemon.app.service_facade``) and
hands it to ``handlers.app.make_app``; mypy checks that it conforms.

Requests arrive parsed and bounded (``handlers.body``) as the contract's
request models (``vocab.contract.requests``); the facade fills in the
configured defaults, resolves models and datasets and refuses with the errors
of ``vocab.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vocab.contract.requests import CompareRequest, EvalRequest, PromoteRequest, TrainRequest


class PublicJob(Protocol):
    """A job as answered: ``public()`` is its JSON form (``store.job_table.Job``)."""

    def public(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HttpSettings:
    """How the HTTP server is set up (the ``[server]`` config)."""

    host: str
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    max_body_bytes: int
    auth_token: str  # "" when requests need none
    upstream_url: str  # "" when nothing is forwarded


class Facade(Protocol):
    """Everything a handler may ask of the daemon. ``kinds`` limits a job lookup to those job kinds
    (NotFound otherwise); errors are ``vocab.errors`` exceptions, mapped to HTTP in one place."""

    @property
    def http(self) -> HttpSettings: ...

    # jobs
    async def submit_eval(self, request: EvalRequest) -> PublicJob: ...
    async def submit_compare(self, request: CompareRequest) -> PublicJob: ...
    async def submit_train(self, request: TrainRequest) -> PublicJob: ...
    async def job(self, job_id: str, kinds: tuple[str, ...] = ...) -> PublicJob: ...
    async def list_jobs(self, status: str | None, kind: str | None, limit: int) -> tuple[Sequence[PublicJob], int]: ...
    async def cancel(self, job_id: str, kinds: tuple[str, ...] = ...) -> PublicJob: ...
    async def predictions_path(self, job_id: str) -> Path: ...

    # rankings and models
    async def leaderboard_json(self, dataset: str | None, limit: int, weights: dict[str, float] | None = None,
                               all_content: bool = False, split: str = "val", task: str | None = None) -> bytes: ...
    async def history(self, model_name: str, limit: int, weights: dict[str, float] | None = None,
                      split: str | None = None, task: str | None = None) -> list[dict[str, Any]]: ...
    async def list_models(self) -> dict[str, Any]: ...
    async def model_detail(self, name: str) -> dict[str, Any]: ...
    async def promote(self, name: str, request: PromoteRequest) -> dict[str, Any]: ...
    async def rollback(self, name: str, reason: str | None) -> dict[str, Any]: ...

    # an evaluation's analysis (curves, errors, images)
    async def eval_id_of_job(self, job_id: str) -> int: ...
    async def evaluation(self, eval_id: int) -> dict[str, Any]: ...
    async def artifact(self, eval_id: int, kind: str, *, full: bool = True) -> dict[str, Any]: ...
    async def image(self, eval_id: int, name: str) -> tuple[Path, str]: ...

    # health and telemetry
    def health(self) -> dict[str, Any]: ...
    async def metrics_exposition(self) -> bytes: ...
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None: ...
