"""The daemon's HTTP API as typed calls, independent of how they are sent.

``Endpoints`` turns each operation (eval, compare, leaderboard, history,
train, jobs, job, cancel, models, model, promote, rollback, predictions)
into a ``Call`` (method, path, JSON body, query) and hands it to ``_send``,
which a transport implements: ``vision_eval.client.Client`` answers with the
decoded JSON, ``vision_eval.aclient.AsyncClient`` with an awaitable of it.
Submitting operations (eval, compare, train) return the new job; ``wait``
(on each client) polls it until it has finished.

Both transports raise the same two errors: ``ApiError`` (the daemon
answered with an error status; ``detail`` is its ``{"detail": ...}``) and
``Unreachable`` (nothing answered at the URL, or not with JSON).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

DEFAULT_URL = "http://127.0.0.1:11540"
FINISHED = ("completed", "failed", "cancelled")

R = TypeVar("R")


class ApiError(Exception):
    """The daemon answered with an HTTP error status."""

    def __init__(self, status: int, detail: str, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail, self.retry_after = status, detail, retry_after


class Unreachable(Exception):
    """No HTTP answer from the daemon's URL (refused, timed out, not HTTP)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the daemon at {url}: {reason}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API; ``path`` is unquoted, ``query`` values None are left out; ``text``:
    the answer is text (CSV), not JSON."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    text: bool = False

    @property
    def accept(self) -> str:
        """The ``Accept`` header of the call."""
        return "text/csv, text/plain" if self.text else "application/json"

    def url(self, base: str) -> str:
        """``base`` + the quoted path + the encoded query string."""
        params = query_params(self.query)
        return base + urllib.parse.quote(self.path) + (f"?{urllib.parse.urlencode(params)}" if params else "")


def query_params(query: dict[str, Any] | None) -> dict[str, str]:
    """Query values as strings, None left out, booleans as ``true``/``false``."""
    return {k: (("true" if v else "false") if isinstance(v, bool) else str(v))
            for k, v in (query or {}).items() if v is not None}


def body(**fields: Any) -> dict[str, Any]:
    """A request body without the fields left at None or False (the daemon's defaults apply)."""
    return {k: v for k, v in fields.items() if v is not None and v is not False}


def error_detail(raw: bytes, reason: str) -> str:
    """The daemon's ``detail`` from an error body, else the body's text, else the HTTP reason."""
    try:
        decoded = json.loads(raw)
        if isinstance(decoded, dict) and "detail" in decoded:
            return str(decoded["detail"])
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text[:500] or reason


def decode(raw: bytes, url: str, call: Call) -> Any:
    """A success body: the text for a ``text`` call, else the JSON (None when empty); ``Unreachable`` when
    it is not what the call expects."""
    try:
        if call.text:
            return raw.decode("utf-8")
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        expected = "UTF-8 text" if call.text else "JSON"
        raise Unreachable(url, f"the answer is not {expected} (is this the vision-evald API?)") from None


def poll_intervals(first: float, most: float) -> Iterator[float]:
    """The pauses between job polls: ``first``, growing by half each time, capped at ``most``."""
    interval = first
    while True:
        yield interval
        interval = min(most, interval * 1.5)


class Endpoints(Generic[R]):
    """The API's operations; ``R`` is what the transport's ``_send`` returns for a call."""

    def _send(self, call: Call) -> R:
        raise NotImplementedError

    # -- jobs that are submitted (202 + job) ------------------------------------------------
    def eval(self, model: str, dataset: str, *, imgsz: int | None = None, batch_size: int | None = None,
             weights: dict[str, float] | None = None, allow_class_mismatch: bool = False,
             auto_promote: bool = False, split: str | None = None, format: str | None = None) -> R:
        """Submit ``POST /v1/vision/eval``; the job. ``model``: a name or a path (.pt or .onnx) the daemon
        can read; ``format="onnx"`` makes a name its latest ``v<n>.onnx``; ``split``: val, test or train."""
        return self._send(Call("POST", "/v1/vision/eval", body(
            model=model, dataset=dataset, imgsz=imgsz, batch_size=batch_size, weights=weights,
            allow_class_mismatch=allow_class_mismatch, auto_promote=auto_promote, split=split, format=format)))

    def compare(self, model_a: str, model_b: str, dataset: str, *, imgsz: int | None = None,
                batch_size: int | None = None, weights: dict[str, float] | None = None,
                bootstrap_resamples: int | None = None, bootstrap_seed: int | None = None,
                split: str | None = None) -> R:
        """Submit ``POST /v1/vision/eval/compare``; the job."""
        return self._send(Call("POST", "/v1/vision/eval/compare", body(
            model_a=model_a, model_b=model_b, dataset=dataset, imgsz=imgsz, batch_size=batch_size,
            weights=weights, bootstrap_resamples=bootstrap_resamples, bootstrap_seed=bootstrap_seed, split=split)))

    def train(self, model: str, dataset: str, *, task: str | None = None, config: dict[str, Any] | None = None,
              base_model: str | None = None, auto_eval: bool = False, auto_promote: bool = False,
              eval_weights: dict[str, float] | None = None, split: str | None = None) -> R:
        """Submit ``POST /v1/vision/train``; the job. ``task``: a task name or ultralytics alias
        (``vocab.tasks``; None: the daemon's default); ``config``: epochs, batch_size, imgsz, learning_rate,
        patience (the daemon's defaults for those left out); ``split``: the one the new version is evaluated on."""
        return self._send(Call("POST", "/v1/vision/train", body(
            model=model, dataset=dataset, task=task, config=config or None, base_model=base_model,
            auto_eval=auto_eval, auto_promote=auto_promote, eval_weights=eval_weights, split=split)))

    # -- reads ------------------------------------------------------------------------------
    def leaderboard(self, *, dataset: str | None = None, limit: int | None = None, split: str | None = None,
                    weights: str | None = None, content: str | None = None, task: str | None = None,
                    format: str | None = None) -> R:
        """Models ranked by their best score on a split (default val; a list of rows), under ``weights``
        (JSON text; default weights if None); ``content="all"`` adds results of a dataset's earlier contents;
        ``task`` keeps one task's; ``format="csv"``: the same rows as CSV text."""
        return self._send(Call("GET", "/v1/vision/eval/leaderboard", query={
            "dataset": dataset, "limit": limit, "split": split, "weights": weights, "content": content,
            "task": task, "format": format}, text=format == "csv"))

    def history(self, model: str, *, limit: int | None = None, split: str | None = None,
                weights: str | None = None, task: str | None = None, format: str | None = None) -> R:
        """Every evaluation of one model (on a split, of a task, when given), newest first (a list of rows),
        scored under ``weights``; ``format="csv"``: the same rows as CSV text."""
        return self._send(Call("GET", f"/v1/vision/eval/leaderboard/{model}",
                               query={"limit": limit, "split": split, "weights": weights, "task": task,
                                      "format": format}, text=format == "csv"))

    def jobs(self, *, status: str | None = None, kind: str | None = None, limit: int | None = None) -> R:
        """``{"jobs": [...], ...}``, newest first."""
        return self._send(Call("GET", "/v1/vision/jobs", query={"status": status, "kind": kind, "limit": limit}))

    def job(self, job_id: str) -> R:
        """One job, with its progress, result or error."""
        return self._send(Call("GET", f"/v1/vision/jobs/{job_id}"))

    def cancel(self, job_id: str) -> R:
        """Cancel a queued or running job; the job as it stands."""
        return self._send(Call("DELETE", f"/v1/vision/jobs/{job_id}"))

    def predictions(self, job_id: str) -> R:
        """The COCO-style predictions artifact of a completed eval job."""
        return self._send(Call("GET", f"/v1/vision/eval/{job_id}/predictions"))

    def models(self) -> R:
        """The models in the models folder, in the runtime's shape ``{"models": [...], "total"}``, each with
        its latest evaluation."""
        return self._send(Call("GET", "/v1/vision/models"))

    def model(self, name: str) -> R:
        """One model: versions, current checkpoint, evaluations, promotion decisions."""
        return self._send(Call("GET", f"/v1/vision/models/{name}"))

    # -- promotions -------------------------------------------------------------------------
    def promote(self, name: str, version: int, *, reason: str | None = None, force: bool = False) -> R:
        """Make ``v<version>.pt`` the model's current.pt now; the recorded decision. ``force`` (with a
        ``reason``) promotes a version not evaluated yet or refused by the gates."""
        return self._send(Call("POST", f"/v1/vision/models/{name}/promote",
                               body(version=version, reason=reason, force=force or None)))

    def rollback(self, name: str, *, reason: str | None = None) -> R:
        """Restore the checkpoint current.pt held before the last promotion; the recorded decision."""
        return self._send(Call("POST", f"/v1/vision/models/{name}/rollback", body(reason=reason)))
